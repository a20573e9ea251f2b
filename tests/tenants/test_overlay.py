"""The shared overlay mechanism: governance, versions, overlays, pilot and propagation.

Each test registers a kind of its own (HQ-wide tables are shared by the whole session),
so version numbers and rollout state start from scratch.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest

from core.errors import InvalidInput, NotFound
from tenants import overlay, rollout
from tenants.context import SYSTEM, HqContext
from tenants.governance import Parameter, check_declaration, check_override, violation
from tenants.service import context_for

HQ = HqContext()
_kinds = itertools.count()


class Policy(msgspec.Struct, forbid_unknown_fields=True):
    """A toy pressure policy: caps referring to parameters by name."""

    caps: dict[str, str]  # channel -> parameter name


async def _validate(db: Any, definition: Policy, parameters: dict[str, Parameter]) -> None:
    for channel, name in definition.caps.items():
        if name not in parameters:
            raise InvalidInput(f"unknown parameter {name!r}", field=f"definition.caps.{channel}")
        if parameters[name].default < 0:  # type: ignore[operator]
            raise InvalidInput("a cap cannot be negative", field=f"definition.caps.{channel}")


def _kind(builtin: bool = False) -> str:
    name = f"test_policy_{next(_kinds)}"
    overlay.register_kind(overlay.OverlayKind(
        name=name, definition_type=Policy, validate=_validate,
        builtin=(lambda: overlay.VersionCreate(
            definition=Policy(caps={"email": "email_cap"}),
            parameters={"email_cap": Parameter(3)})) if builtin else None))
    return name


def _version(email_cap: Parameter, **more: Parameter) -> overlay.VersionCreate:
    caps = {"email": "email_cap"} | {name.removesuffix("_cap"): name for name in more}
    return overlay.VersionCreate(definition=Policy(caps=caps),
                                 parameters={"email_cap": email_cap, **more})


# -- governance ---------------------------------------------------------------------------

def test_overrides_are_checked_against_governance_with_bounds_in_the_error():
    bounded = Parameter(90, "bounded", min=30, max=180)
    assert violation("inactive_days", bounded, 60) is None
    with pytest.raises(InvalidInput) as err:
        check_override("inactive_days", bounded, 10, "overrides.inactive_days")
    assert err.value.field == "overrides.inactive_days"
    assert "between 30 and 180" in err.value.detail and "'inactive_days'" in err.value.detail
    assert err.value.extra["bounds"] == {"min": 30, "max": 180}
    assert "locked" in violation("x", Parameter(5), 6)
    assert violation("x", Parameter(5), 5) is None  # restating the HQ value is fine
    assert "number" in violation("x", Parameter(0.5, "overridable"), "high")
    assert violation("x", Parameter(0.5, "overridable"), 1) is None  # an int is a number
    assert "integer" in violation("x", Parameter(3, "overridable"), 2.5)
    assert "boolean" in violation("x", Parameter(True, "overridable"), 1)
    channels = Parameter("email", "bounded", allowed=["email", "sms"])
    assert "one of ['email', 'sms']" in violation("channel", channels, "push")
    lists = Parameter(["email"], "bounded", allowed=["email", "sms"])
    assert violation("channels", lists, ["sms", "email"]) is None
    assert violation("channels", lists, ["fax"]) is not None


def test_hq_declarations_must_be_coherent():
    for param, field in [
        (Parameter(10, "bounded"), "p.mode"),
        (Parameter(10, "bounded", min=20, max=30), "p.default"),
        (Parameter(10, "bounded", min=30, max=20), "p.min"),
        (Parameter("a", "bounded", min=1), "p.min"),
        (Parameter(10, "locked", min=1), "p.mode"),
        (Parameter("a", "bounded", allowed=["a", 2]), "p.allowed[1]"),
    ]:
        with pytest.raises(InvalidInput) as err:
            check_declaration("p", param, "p")
        assert err.value.field == field, (param, err.value.detail)


# -- versions, overlays, rollout ----------------------------------------------------------

async def test_first_version_is_current_and_a_tenant_tunes_within_bounds(db, make_tenant):
    kind = _kind()
    tenant = await make_tenant("ovl")
    ctx = context_for(tenant, SYSTEM)
    with pytest.raises(NotFound):
        await overlay.effective(db, ctx, kind)  # nothing published, no built-in
    v1 = await overlay.create_version(db, HQ, kind, _version(
        Parameter(3, "bounded", min=1, max=5), sms_cap=Parameter(1)))
    assert v1.version == 1
    effective = await overlay.effective(db, ctx, kind)
    assert (effective.version, effective.pilot) == (1, False)
    assert effective.parameters == {"email_cap": 3, "sms_cap": 1}

    tuned = await overlay.put_overlay(db, ctx, kind,
                                      overlay.OverlayUpdate(overrides={"email_cap": 4}))
    assert tuned.parameters["email_cap"] == 4
    assert [g.name for g in tuned.governance if g.overridden] == ["email_cap"]
    for overrides, field in [({"email_cap": 9}, "overrides.email_cap"),
                             ({"sms_cap": 2}, "overrides.sms_cap"),
                             ({"push_cap": 1}, "overrides.push_cap")]:
        with pytest.raises(InvalidInput) as err:
            await overlay.put_overlay(db, ctx, kind, overlay.OverlayUpdate(overrides=overrides))
        assert err.value.field == field
    # A refused update leaves the previous overlay in place.
    assert (await overlay.get_overlay(db, ctx, kind)).overrides == {"email_cap": 4}


async def test_publishing_refuses_invalid_definitions_naming_the_field(db):
    kind = _kind()
    bad = overlay.VersionCreate(definition=Policy(caps={"email": "nope"}),
                                parameters={"email_cap": Parameter(3)})
    with pytest.raises(InvalidInput) as err:
        await overlay.create_version(db, HQ, kind, bad)
    assert err.value.field == "definition.caps.email"
    with pytest.raises(InvalidInput) as err:
        await overlay.create_version(db, HQ, kind, overlay.VersionCreate(
            definition={"caps": {"email": 3}}, parameters={"email_cap": Parameter(3)}))
    assert err.value.field.startswith("definition.caps")  # msgspec: `caps[...]`
    page = await overlay.list_versions(db, kind, cursor=None, limit=10)
    assert page.items == []


async def test_tuned_values_that_break_the_definition_are_refused(db, make_tenant):
    kind = _kind()
    ctx = context_for(await make_tenant("ovl"), SYSTEM)
    await overlay.create_version(db, HQ, kind, _version(Parameter(3, "overridable")))
    with pytest.raises(InvalidInput) as err:
        await overlay.put_overlay(db, ctx, kind, overlay.OverlayUpdate(overrides={"email_cap": -1}))
    assert err.value.field == "overrides" and "cannot be negative" in err.value.detail


async def test_pilot_then_propagate_with_every_tenant_reporting_its_version(db, make_tenant):
    kind = _kind(builtin=True)
    a, b, c = [context_for(await make_tenant("ro"), SYSTEM) for _ in range(3)]
    assert (await overlay.effective(db, a, kind)).version == 0  # built-in
    await overlay.create_version(db, HQ, kind, _version(Parameter(3, "bounded", min=1, max=6)))
    await overlay.put_overlay(db, b, kind, overlay.OverlayUpdate(overrides={"email_cap": 6}))
    v2 = await overlay.create_version(db, HQ, kind, _version(
        Parameter(2, "bounded", min=1, max=4)))
    assert (await overlay.effective(db, a, kind)).version == 1  # v2 waits for a rollout

    status = await rollout.start_pilot(db, HQ, kind, v2.version,
                                       rollout.PilotRequest(tenants=[a.tenant_id]))
    versions = {t.tenant_id: (t.version, t.pilot) for t in status.tenants}
    assert versions[a.tenant_id] == (2, True)
    assert versions[b.tenant_id] == versions[c.tenant_id] == (1, False)
    assert status.conflicts == []
    assert (await overlay.effective(db, a, kind)).parameters == {"email_cap": 2}
    assert (await overlay.effective(db, b, kind)).parameters == {"email_cap": 6}

    status = await rollout.propagate(db, HQ, kind, v2.version)
    assert status.current_version == 2
    assert {t.tenant_id: (t.version, t.pilot) for t in status.tenants}[a.tenant_id] == (2, False)
    # b tuned v1 beyond v2's bounds: reported, ignored (b falls back to HQ's value).
    assert [(x.tenant_id, x.ignored[0].parameter) for x in status.conflicts] == [
        (b.tenant_id, "email_cap")]
    effective_b = await overlay.effective(db, b, kind)
    assert effective_b.parameters == {"email_cap": 2}
    assert "between 1 and 4" in effective_b.ignored[0].reason

    # Rolling back is propagating the older version.
    assert (await rollout.propagate(db, HQ, kind, 1)).current_version == 1
    assert (await overlay.effective(db, b, kind)).parameters == {"email_cap": 6}


async def test_pilot_errors_and_ending_a_pilot(db, make_tenant):
    kind = _kind()
    a = context_for(await make_tenant("ro"), SYSTEM)
    await overlay.create_version(db, HQ, kind, _version(Parameter(3)))
    v2 = await overlay.create_version(db, HQ, kind, _version(Parameter(4)))
    with pytest.raises(InvalidInput) as err:
        await rollout.start_pilot(db, HQ, kind, 2, rollout.PilotRequest(tenants=["nope-x"]))
    assert err.value.field == "tenants[0]"
    with pytest.raises(InvalidInput):
        await rollout.start_pilot(db, HQ, kind, 1, rollout.PilotRequest(tenants=[a.tenant_id]))
    with pytest.raises(NotFound):
        await rollout.start_pilot(db, HQ, kind, 7, rollout.PilotRequest(tenants=[a.tenant_id]))
    await rollout.start_pilot(db, HQ, kind, v2.version,
                              rollout.PilotRequest(tenants=[a.tenant_id]))
    assert (await overlay.effective(db, a, kind)).version == 2
    await rollout.end_pilot(db, HQ, kind, a.tenant_id)
    assert (await overlay.effective(db, a, kind)).version == 1
    with pytest.raises(NotFound):
        await rollout.end_pilot(db, HQ, kind, a.tenant_id)
