"""Compiles a validated definition into one set-based SQL query over a tenant's data.

Shape of every compiled query:

    with ev as (select customer_id, <one aggregate per event condition> from events
                where type = any(<types used>) [and occurred_at >= <earliest window>]
                group by customer_id),
         idn as (... identifiers ...), cns as (... consents ...)
    select ... from customers c left join ev ... left join idn ... left join cns ...
    where c.merged_into is null and c.erased_at is null and <boolean expression>

(or, when the segment needs an events row and reads no profile column, driven by `ev`
alone: see `_FROM_EVENTS`).

Each related table is read once, whatever the number of conditions on it (aggregates use
`FILTER`), and joined by hash: no per-customer subqueries, no Python loops. Every value is
a bind parameter; field and property names only reach the SQL text as quoted identifiers
of validated dictionary columns, JSON keys are bound too. Every leaf is wrapped so that it
is true or false, never NULL, which keeps `not` two-valued (see `definition` semantics).
RLS scopes every table read to the transaction's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.segments import definition as d
from core.segments.definition import days_before
from core.segments.plan import conjuncts, requires_row
from core.segments.validate import family
from core.segments.vocabulary import FieldInfo, Vocabulary

_SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_CASTS = {"string": "text", "number": "float8", "boolean": "boolean", "date": "date",
          "datetime": "timestamptz"}
# For "days since" comparisons: days_since OP n  <=>  timestamp FLIPPED(OP) now - n days.
_FLIP = {"eq": "=", "ne": "<>", "lt": ">", "lte": ">=", "gt": "<", "gte": "<="}


@dataclass
class _Source:
    """One related table, read once, aggregated per customer."""

    alias: str
    columns: list[str] = field(default_factory=list)
    prefilter: list[str] = field(default_factory=list)
    # Conditions false without a row here: applied to the aggregate, inner join.
    required: list[str] = field(default_factory=list)


# The live profiles, read from `customers c` (conditions on profile fields need the row).
_FROM_PROFILES = "customers c"
_LIVE_PROFILES = "c.merged_into is null and c.erased_at is null"
# Driven by the events aggregate when a segment needs an events row and reads nothing of
# the profile but its id: `c.id` is then the event's customer, and the live-profile test
# is an anti-join with the few merged or erased profiles (partial index
# customers_merged_or_erased) instead of reading every profile. Sound because profiles
# are never deleted: every event's customer has a row.
_FROM_EVENTS = "ev cross join lateral (select ev.customer_id as id) c"
_LIVE_EVENT_CUSTOMERS = ("not exists (select 1 from customers x where x.id = ev.customer_id "
                         "and (x.merged_into is not null or x.erased_at is not null))")


@dataclass
class Compiled:
    ctes: str
    joins: str
    where: str
    args: list[Any]
    source: str = _FROM_PROFILES
    live: str = _LIVE_PROFILES

    def select(self, columns: str, tail: str = "") -> tuple[str, list[Any]]:
        sql = (f"{self.ctes} select {columns} from {self.source} {self.joins} "
               f"where {self.live} and {self.where} {tail}")
        return sql, self.args

    def bind(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"


class Compiler:
    """Compile one or more definitions (e.g. every stage rule of a canvas) into one query;
    `condition()` may be called several times before `finish()`."""

    def __init__(self, vocab: Vocabulary, now: datetime,
                 segments: dict[str, d.Condition] | None = None) -> None:
        self.vocab, self.now, self.segments = vocab, now, segments or {}
        self.args: list[Any] = []
        self.ev = _Source("ev")
        self.idn = _Source("idn")
        self.cns = _Source("cns")
        self.sources = {s.alias: s for s in (self.ev, self.idn, self.cns)}
        self.uses: set[str] = set()  # what the condition being compiled reads
        self.profile_filter: str | None = None
        self.properties: dict[tuple[str, str], str] = {}
        self.property_columns: list[str] = []
        self.event_types: set[str] = set()
        self.lower_bounds: list[datetime | None] = []
        self._expanding: list[str] = []
        self.reads_profile = False  # some condition of `where` reads a profile column

    def bind(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    # -- boolean expression -------------------------------------------------------------

    def condition(self, node: d.Condition) -> str:
        match node:
            case d.And(conditions=children):
                return "(" + " and ".join(self.condition(c) for c in children) + ")"
            case d.Or(conditions=children):
                return "(" + " or ".join(self.condition(c) for c in children) + ")"
            case d.Not(condition=child):
                return f"(not {self.condition(child)})"
            case d.Everyone():
                return "true"
            case d.FieldCondition():
                self.uses.add("c")
                expr, info = self._field(node.field)
                return self._compare(expr, info.type, node.op, node.value)
            case d.IdentifierCondition():
                kind = self.bind(node.kind, "text")
                self.idn.prefilter.append(f"i.kind = {kind}")
                col = self._column(self.idn, f"bool_or(i.kind = {kind})")
                return f"coalesce(idn.{col}, false)" if node.present \
                    else f"not coalesce(idn.{col}, false)"
            case d.ConsentCondition():
                return self._consent(node)
            case d.EventCondition():
                return self._event(node)
            case d.TrendCondition():
                return self._trend(node)
            case d.StageCondition():
                self.uses.add("c")
                return f"coalesce(c.stage = any({self.bind(list(node.stages), 'text[]')}), false)"
            case d.SegmentCondition():
                return self._segment(node.segment_id)
            case d.BucketCondition():
                self.uses.add("c")
                seed = self.bind(node.seed, "text")
                return (f"((('x' || substr(md5({seed} || c.id::text), 1, 8))::bit(32)::bigint"
                        f" % 10000) between {node.min} and {node.max})")
            case d.RfmCondition():
                return self._rfm(node)
        raise TypeError(f"unhandled condition {type(node).__name__}")

    def _segment(self, segment_id: str) -> str:
        if segment_id in self._expanding:  # validation refuses cycles; belt and braces
            raise ValueError(f"segment {segment_id} refers to itself")
        self._expanding.append(segment_id)
        try:
            return self.condition(self.segments[segment_id])
        finally:
            self._expanding.pop()

    # -- fields -------------------------------------------------------------------------

    def _field(self, name: str) -> tuple[str, FieldInfo]:
        info = self.vocab.fields[name]
        if info.column:
            return f'c."{name}"', info
        key = self.bind(name, "text")
        typeof = f"jsonb_typeof(c.attributes -> {key})"
        fam = family(info.type)
        if fam == "number":
            return f"(case when {typeof} = 'number' then (c.attributes ->> {key})::float8 end)", \
                info
        if fam == "boolean":
            return (f"(case when {typeof} = 'boolean' then (c.attributes ->> {key})::boolean "
                    "end)"), info
        # strings, enums and dates (ISO text compares like the date) stored as JSON strings
        return f"(case when {typeof} = 'string' then c.attributes ->> {key} end)", \
            FieldInfo("string" if fam in ("string", "date") else fam, False, info.enum_values)

    def _compare(self, expr: str, type_: str, op: str, value: Any) -> str:
        fam = family(type_)
        cast = _CASTS.get(fam, "text")
        if fam == "string":
            expr = f'{expr} collate "C"'  # code-point order, as in Python

        def typed(v: Any) -> Any:
            if fam == "date":
                return date.fromisoformat(v)
            if fam == "datetime":
                return datetime.fromisoformat(v)
            return float(v) if fam == "number" else v

        if op == "is_set":
            sql = f"{expr} is not null"
        elif op == "is_not_set":
            sql = f"{expr} is null"
        elif op in ("in", "not_in"):
            sql = f"{expr} = any({self.bind([typed(v) for v in value], cast + '[]')})"
            if op == "not_in":  # a missing value is in no list, and not "not in" either
                sql = f"{expr} is not null and not ({sql})"
        elif op == "between":
            low, high = (self.bind(typed(v), cast) for v in value)
            sql = f"{expr} between {low} and {high}"
        elif op == "contains":
            sql = f"strpos({expr}, {self.bind(value, 'text')}) > 0"
        elif op == "starts_with":
            sql = f"starts_with({expr}, {self.bind(value, 'text')})"
        else:
            sql = f"{expr} {_SQL_OPS[op]} {self.bind(typed(value), cast)}"
        return f"coalesce({sql}, false)"

    # -- consents -----------------------------------------------------------------------

    def _consent(self, node: d.ConsentCondition) -> str:
        channel, purpose = self.bind(node.channel, "text"), self.bind(node.purpose, "text")
        self.cns.prefilter.append(f"(k.channel = {channel} and k.purpose = {purpose})")
        if node.status == "unknown":
            col = self._column(self.cns, f"bool_or(k.channel = {channel} and "
                                         f"k.purpose = {purpose})")
            return f"not coalesce(cns.{col}, false)"
        status = self.bind(node.status, "text")
        col = self._column(self.cns, f"bool_or(k.channel = {channel} and k.purpose = "
                                     f"{purpose} and k.status = {status})")
        return f"coalesce(cns.{col}, false)"

    # -- events -------------------------------------------------------------------------

    def _column(self, source: _Source, aggregate: str) -> str:
        self.uses.add(source.alias)
        source.columns.append(aggregate)
        return f"a{len(source.columns)}"

    def _event_filter(self, events: str | list[str], window: d.Window | None,
                      where: list[d.PropertyFilter], extra_lower: datetime | None = None,
                      extra_upper: datetime | None = None) -> str:
        names = [events] if isinstance(events, str) else list(events)
        self.event_types.update(names)
        parts = [f"e.type = any({self.bind(names, 'text[]')})"]
        lower = extra_lower
        if window is not None:
            if window.last_days is not None:
                start = days_before(self.now, window.last_days)
                lower = start if lower is None else max(lower, start)
                parts.append(f"e.occurred_at >= {self.bind(start, 'timestamptz')}")
            if window.before_days is not None:
                end = days_before(self.now, window.before_days)
                parts.append(f"e.occurred_at < {self.bind(end, 'timestamptz')}")
            if window.since is not None:
                lower = window.since if lower is None else max(lower, window.since)
                parts.append(f"e.occurred_at >= {self.bind(window.since, 'timestamptz')}")
            if window.until is not None:
                parts.append(f"e.occurred_at < {self.bind(window.until, 'timestamptz')}")
        if extra_lower is not None:
            parts.append(f"e.occurred_at >= {self.bind(extra_lower, 'timestamptz')}")
        if extra_upper is not None:
            parts.append(f"e.occurred_at < {self.bind(extra_upper, 'timestamptz')}")
        self.lower_bounds.append(lower)
        names_props = [self.vocab.events[n] for n in names]
        for f in where:
            spec = next(p[f.property] for p in names_props if f.property in p)
            # dates and timestamps in properties are ISO text: compared as text
            fam = family(spec.type)
            fam = fam if fam in ("number", "boolean", "opaque") else "string"
            parts.append(self._compare(self._property(f.property, fam), fam, f.op, f.value))
        return " and ".join(parts)

    def _property(self, name: str, type_: str) -> str:
        """A typed property of the event row: one column of the events subquery, with
        its key bound once, however many aggregates and filters use it."""
        fam = family(type_)
        column = self.properties.get((name, fam))
        if column is not None:
            return f"e.{column}"
        key = self.bind(name, "text")
        typeof = f"jsonb_typeof(e.properties -> {key})"
        if fam == "number":
            expr = f"case when {typeof} = 'number' then (e.properties ->> {key})::float8 end"
        elif fam == "boolean":
            expr = f"case when {typeof} = 'boolean' then (e.properties ->> {key})::boolean end"
        elif fam == "opaque":
            expr = f"case when {typeof} <> 'null' then e.properties -> {key} end"
        else:
            expr = f"case when {typeof} = 'string' then e.properties ->> {key} end"
        column = self.properties[(name, fam)] = f"p{len(self.properties) + 1}"
        self.property_columns.append(f"{expr} as {column}")
        return f"e.{column}"

    def _event(self, node: d.EventCondition) -> str:
        where = self._event_filter(node.event, node.window, node.where)
        measure = node.measure
        if measure == "count":
            col = self._column(self.ev, f"count(*) filter (where {where})")
            return self._compare_number(f"coalesce(ev.{col}, 0)", node.op, node.value)
        if measure in ("sum", "avg", "min", "max"):
            prop = self._property(node.property, "number")  # type: ignore[arg-type]
            col = self._column(self.ev, f"{measure}({prop}) filter (where {where})")
            expr = f"coalesce(ev.{col}, 0)" if measure == "sum" else f"ev.{col}"
            return self._compare_number(expr, node.op, node.value)
        agg = "min" if measure in ("first", "days_since_first") else "max"
        col = self._column(self.ev, f"{agg}(e.occurred_at) filter (where {where})")
        if measure in ("first", "last"):
            return self._compare_time(f"ev.{col}", node.op, node.value)
        values = node.value if node.op == "between" else [node.value]
        instants = [days_before(self.now, v) for v in values]  # type: ignore[arg-type]
        if node.op == "between":  # lo <= days <= hi  <=>  now-hi <= t <= now-lo
            return self._compare_time(f"ev.{col}", "between", [instants[1], instants[0]])
        return (f"coalesce(ev.{col} {_FLIP[node.op]} "
                f"{self.bind(instants[0], 'timestamptz')}, false)")

    def _compare_number(self, expr: str, op: str, value: Any) -> str:
        if op == "between":
            low, high = (self.bind(float(v), "float8") for v in value)
            return f"coalesce({expr} between {low} and {high}, false)"
        return f"coalesce({expr} {_SQL_OPS[op]} {self.bind(float(value), 'float8')}, false)"

    def _compare_time(self, expr: str, op: str, value: Any) -> str:
        if op == "between":
            low, high = (self.bind(v, "timestamptz") for v in value)
            return f"coalesce({expr} between {low} and {high}, false)"
        return f"coalesce({expr} {_SQL_OPS[op]} {self.bind(value, 'timestamptz')}, false)"

    def _trend(self, node: d.TrendCondition) -> str:
        recent_start = days_before(self.now, node.recent_days)
        base_start = days_before(self.now, node.recent_days + node.baseline_days)
        recent = self._column(self.ev, "count(*) filter (where " + self._event_filter(
            node.event, None, node.where, extra_lower=recent_start) + ")")
        base = self._column(self.ev, "count(*) filter (where " + self._event_filter(
            node.event, None, node.where, extra_lower=base_start,
            extra_upper=recent_start) + ")")
        rd, bd = self.bind(float(node.recent_days), "float8"), \
            self.bind(float(node.baseline_days), "float8")
        ratio = self.bind(float(node.ratio), "float8")
        return (f"(coalesce(ev.{base}, 0) > 0 and coalesce(ev.{recent}, 0) * {bd} "
                f"{_SQL_OPS[node.op]} {ratio} * coalesce(ev.{base}, 0) * {rd})")

    def _rfm(self, node: d.RfmCondition) -> str:
        where = self._event_filter(node.event, node.window, node.where)
        last = self._column(self.ev, f"max(e.occurred_at) filter (where {where})")
        count = self._column(self.ev, f"count(*) filter (where {where})")
        parts = []
        if node.recency is not None:
            steps = " + ".join(
                f"(ev.{last} < {self.bind(days_before(self.now, t), 'timestamptz')})::int"
                for t in node.recency_days)
            score = f"(case when ev.{last} is null then 1 else 5 - ({steps}) end)"
            parts.append(f"{score} between {node.recency.min} and {node.recency.max}")
        if node.frequency is not None:
            steps = " + ".join(f"(coalesce(ev.{count}, 0) >= {self.bind(float(t), 'float8')})::int"
                               for t in node.frequency_counts)
            parts.append(f"1 + {steps} between {node.frequency.min} and {node.frequency.max}")
        if node.monetary is not None and node.monetary_property and node.monetary_amounts:
            prop = self._property(node.monetary_property, "number")
            total = self._column(self.ev, f"sum({prop}) filter (where {where})")
            steps = " + ".join(f"(coalesce(ev.{total}, 0) >= {self.bind(float(t), 'float8')})::int"
                               for t in node.monetary_amounts)
            parts.append(f"1 + {steps} between {node.monetary.min} and {node.monetary.max}")
        return "(" + " and ".join(parts) + ")" if parts else "true"

    # -- assembly -----------------------------------------------------------------------

    def finish(self, where: str, *, only: str | None = None) -> Compiled:
        """`only`: a subquery of customer ids the query is limited to (an incremental
        run); related tables are then read for those customers only."""
        ctes, joins = [], []
        events_drive = bool(self.ev.columns and self.ev.required) and not self.reads_profile
        if only is not None:
            where = f"c.id in ({only}) and {where}"
        if self.profile_filter is not None:
            restrict = ("select c.id from customers c where c.merged_into is null and "
                        f"c.erased_at is null and {self.profile_filter}")
            only = restrict if only is None else f"{restrict} and c.id in ({only})"
        if self.ev.columns:
            pre = f"e.type = any({self.bind(sorted(self.event_types), 'text[]')})"
            if only is not None:
                pre += f" and e.customer_id in ({only})"
            if self.lower_bounds and all(b is not None for b in self.lower_bounds):
                pre += f" and e.occurred_at >= {self.bind(min(self.lower_bounds), 'timestamptz')}"
            events = "events"
            if self.property_columns:
                # Inlined by the planner (which keeps the scan parallel; an `offset 0`
                # fence would extract each property once but serialise the scan).
                events = (f"(select e.customer_id, e.type, e.occurred_at, "
                          f"{', '.join(self.property_columns)} from events e where {pre})")
                pre = "true"
            ctes.append(self._aggregate(self.ev, events, "e", pre))
            if not events_drive:
                joins.append(self._join(self.ev))
        for source, table, letter in ((self.idn, "identifiers", "i"), (self.cns, "consents", "k")):
            if source.columns:
                pre = "(" + (" or ".join(source.prefilter) or "true") + ")"
                if only is not None:
                    pre += f" and {letter}.customer_id in ({only})"
                ctes.append(self._aggregate(source, table, letter, pre))
                joins.append(self._join(source))
        compiled = Compiled(ctes=("with " + ", ".join(ctes)) if ctes else "",
                            joins=" ".join(joins), where=where, args=self.args)
        if events_drive:
            compiled.source, compiled.live = _FROM_EVENTS, _LIVE_EVENT_CUSTOMERS
        return compiled


    @staticmethod
    def _aggregate(source: _Source, table: str, letter: str, pre: str) -> str:
        cols = ", ".join(f"{c} as a{i + 1}" for i, c in enumerate(source.columns))
        grouped = (f"select {letter}.customer_id, {cols} from {table} {letter} where {pre} "
                   f"group by {letter}.customer_id")
        if source.required:
            grouped = (f"select * from ({grouped}) {source.alias} "
                       f"where {' and '.join(source.required)}")
        return f"{source.alias} as ({grouped})"

    @staticmethod
    def _join(source: _Source) -> str:
        kind = "join" if source.required else "left join"
        return f"{kind} {source.alias} on {source.alias}.customer_id = c.id"

    def where(self, node: d.Condition) -> str:
        """The filter of a segment, planned per top-level conjunct:
        - an identifier or consent test becomes a semi-join (or anti-join);
        - a conjunct reading one related table only, and false without a row there,
          filters that table's per-customer aggregate, which is then inner-joined;
        - conjuncts on the profile alone also restrict which customers' related rows are
          aggregated at all (a 10% bucket aggregates 10% of the events)."""
        main, on_profile = [], []
        for part in conjuncts(node):
            if isinstance(part, (d.IdentifierCondition, d.ConsentCondition)):
                main.append(self._exists(part))
                continue
            self.uses = set()
            sql = self.condition(part)
            self.reads_profile |= "c" in self.uses
            if len(self.uses) == 1:
                (alias,) = self.uses
                if alias in self.sources and requires_row(part, alias, self.segments):
                    self.sources[alias].required.append(sql)
                    continue
                if alias == "c":
                    on_profile.append(sql)
            main.append(sql)
        self.profile_filter = " and ".join(on_profile) or None
        return " and ".join(main) or "true"

    def _exists(self, node: d.IdentifierCondition | d.ConsentCondition) -> str:
        """Only valid as a top-level conjunct, where the planner turns it into a hash
        semi-/anti-join (nested under or/not it would probe per customer)."""
        if isinstance(node, d.IdentifierCondition):
            test = f"i.kind = {self.bind(node.kind, 'text')}"
            sql = f"exists (select 1 from identifiers i where i.customer_id = c.id and {test})"
            return sql if node.present else f"not {sql}"
        test = (f"k.channel = {self.bind(node.channel, 'text')} and "
                f"k.purpose = {self.bind(node.purpose, 'text')}")
        if node.status == "unknown":
            return f"not exists (select 1 from consents k where k.customer_id = c.id and {test})"
        test += f" and k.status = {self.bind(node.status, 'text')}"
        return f"exists (select 1 from consents k where k.customer_id = c.id and {test})"


def compile_definition(node: d.Condition, vocab: Vocabulary, now: datetime,
                       segments: dict[str, d.Condition] | None = None) -> Compiled:
    compiler = Compiler(vocab, now, segments)
    return compiler.finish(compiler.where(node))
