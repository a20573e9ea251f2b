"""The lifecycle canvas, part 1: HQ's versioned stage model, an overlay kind.

A stage model is an ordered list of stages, each with a rule in the segment condition
language; a customer is in the first stage whose rule matches, and the last rule must be
`{"type": "all"}`, so every customer gets exactly one stage. Numbers in rules may be
parameters (`{"param": "inactive_days"}`) that HQ governs and tenants tune through the
overlay mechanism of `tenants/overlay.py` (kind `lifecycle_canvas`).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from core.db import Connection, Database
from core.errors import InvalidInput
from core.segments import definition as d
from core.segments.validate import parse, validate
from core.segments.vocabulary import Vocabulary, hq_vocabulary
from tenants.governance import Parameter
from tenants.overlay import (
    Effective,
    OverlayKind,
    VersionCreate,
    effective_in,
    load_version,
    register_kind,
)

KIND = "lifecycle_canvas"
StageName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ACTIVITY = ["trip_validated", "ticket_purchased", "subscription_started",
            "subscription_renewed"]


class StageRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: StageName
    when: d.Condition
    description: str = ""


class StageModel(msgspec.Struct, forbid_unknown_fields=True):
    stages: list[StageRule]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]


def _p(name: str) -> d.ParamRef:
    return d.ParamRef(param=name)


def default_version() -> VersionCreate:
    """The built-in canvas (version 0) and the starting point of HQ's first version."""
    activity = {"event": ACTIVITY}
    stages = [
        StageRule("prospect", d.Not(d.EventCondition(**activity, op="gte", value=1)),
                  "known, never travelled nor bought"),
        StageRule("lapsed", d.EventCondition(**activity, measure="days_since_last", op="gt",
                                             value=_p("lapsed_days")),
                  "no activity for more than lapsed_days"),
        StageRule("inactive", d.EventCondition(**activity, measure="days_since_last",
                                               op="gt", value=_p("inactive_days")),
                  "no activity for more than inactive_days"),
        StageRule("new", d.EventCondition(**activity, measure="days_since_first", op="lte",
                                          value=_p("new_days")),
                  "first activity within new_days"),
        StageRule("fragile", d.And([
            d.StageCondition(["active", "loyal", "fragile"]),
            d.TrendCondition(event="trip_validated", recent_days=_p("fragile_recent_days"),
                             baseline_days=_p("fragile_baseline_days"), op="lt",
                             ratio=_p("fragile_ratio"))]),
                  "was active; trips in the recent window below fragile_ratio of the "
                  "previous average"),
        StageRule("loyal", d.And([
            d.EventCondition(event="trip_validated", op="gte", value=_p("loyal_trips"),
                             window=d.Window(last_days=_p("loyal_window_days"))),
            d.EventCondition(**activity, measure="days_since_first", op="gte",
                             value=_p("loyal_tenure_days"))]),
                  "frequent traveller for a while"),
        StageRule("active", d.Everyone(), "everybody else"),
    ]
    P = Parameter
    parameters = {
        "new_days": P(30, "bounded", min=7, max=90, description="days a customer stays new"),
        "inactive_days": P(90, "bounded", min=30, max=180,
                           description="inactive after N days without activity"),
        "lapsed_days": P(365, "bounded", min=180, max=730,
                         description="lapsed after N days without activity"),
        "loyal_trips": P(20, "bounded", min=5, max=100,
                         description="trips within loyal_window_days to be loyal"),
        "loyal_window_days": P(90, "overridable", description="window counting loyal trips"),
        "loyal_tenure_days": P(180, "overridable",
                               description="minimum days since first activity to be loyal"),
        "fragile_recent_days": P(30, "locked", description="recent window of the trend"),
        "fragile_baseline_days": P(90, "locked", description="baseline window of the trend"),
        "fragile_ratio": P(0.5, "bounded", min=0.2, max=0.8,
                           description="fragile when the recent rate is below this share of "
                                       "the baseline rate"),
    }
    return VersionCreate(definition=StageModel(stages), parameters=parameters,
                         notes="built-in default stage model")


def resolved_rules(model: StageModel, values: dict[str, Any], vocab: Vocabulary,
                   prefix: str = "definition") -> list[tuple[str, d.Condition]]:
    """Each stage's rule with parameters replaced by their values, validated."""
    vocab = vocab.with_stages(frozenset(model.names))
    rules = []
    for i, stage in enumerate(model.stages):
        path = f"{prefix}.stages[{i}].when"
        node = parse(stage.when, values, path)
        validate(node, vocab, path=path)
        rules.append((stage.name, node))
    return rules


def check_model(model: StageModel, values: dict[str, Any], vocab: Vocabulary) -> None:
    if len(model.stages) < 2:
        raise InvalidInput("a stage model has at least two stages", field="definition.stages")
    seen: set[str] = set()
    for i, stage in enumerate(model.stages):
        if stage.name in seen:
            raise InvalidInput(f"stage {stage.name!r} appears twice",
                               field=f"definition.stages[{i}].name")
        seen.add(stage.name)
    if not isinstance(model.stages[-1].when, d.Everyone):
        raise InvalidInput('the last stage must match everybody ({"type": "all"}) so every '
                           "customer gets exactly one stage",
                           field=f"definition.stages[{len(model.stages) - 1}].when")
    resolved_rules(model, values, vocab)


async def _validate_version(db: Database, model: StageModel,
                            parameters: dict[str, Parameter]) -> None:
    vocab = await hq_vocabulary(db)
    check_model(model, {name: p.default for name, p in parameters.items()}, vocab)
    # Every value a tenant may choose must give a valid model too: try the bounds.
    for name, p in parameters.items():
        for bound in (p.min, p.max):
            if p.mode == "bounded" and bound is not None:
                values = {n: q.default for n, q in parameters.items()} | {name: bound}
                check_model(model, values, vocab)


def stage_model(effective: Effective) -> StageModel:
    return msgspec.convert(effective.definition, StageModel)


LIFECYCLE_CANVAS = register_kind(OverlayKind(
    name=KIND, definition_type=StageModel, validate=_validate_version,
    builtin=default_version,
    description="lifecycle stage model: ordered stage rules with governed parameters"))


async def stage_names_in(conn: Connection, tenant_id: str) -> frozenset[str]:
    """Stages of the canvas the tenant runs (what segment conditions may name)."""
    return frozenset(stage_model(await effective_in(conn, tenant_id, KIND)).names)


async def global_stage_names(conn: Connection) -> frozenset[str]:
    """Stages a global definition may name: those of the current version and of every
    piloted one (a stage some tenant runs)."""
    numbers = await conn.fetch(
        """select current_version as version from overlay_rollouts where kind = $1
           union select version from overlay_pilots where kind = $1""", KIND)
    names: set[str] = set()
    for number in [r["version"] for r in numbers] or [0]:
        version = await load_version(conn, KIND, number)
        names.update(msgspec.convert(version.definition, StageModel).names)
    return frozenset(names)
