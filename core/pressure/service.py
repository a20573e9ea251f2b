"""Marketing pressure: the effective policy of a tenant, and caps + arbitration over the
contact history, set-based.

The cap step works on a candidates table the caller fills (`customer_id, channel, send_at,
tz, step, reason` — one row per message it would like to send, at most one per customer
and channel) and marks the rows a cap refuses. Counting follows Adobe's pressure rule: a
message passes a rule only if

    sent in the period + already planned in the period with higher priority < max

where "sent" is every message past `planned` except failed/skipped ones (in flight counts:
it cannot be taken back), "higher priority" is a greater priority, or an equal one
scheduled no later (the earliest scheduled wins; on a tie the one planned first). After the
new messages are written, `displace` skips the planned messages of lower rank that no
longer fit, so the total in every period stays within the cap.

Locking: caps are per customer, so what must not interleave is two plans counting and
writing for the same customers. The whole cap step of a batch — count, decide, write,
displace — runs under transaction-scoped advisory locks on the customer partitions it
touches (first byte of the customer id, 256 partitions, taken in ascending order: no
deadlock; `lock_candidates`), after the cheap filters, released at commit. Two campaigns
reaching the same customers therefore decide them one after the other, each seeing the
other's committed messages; batches of one campaign cover disjoint partitions
(`core.campaigns.audience.snapshot` cuts them so) and run side by side. Inside the locks,
the planned rows of the batch's customers are also locked `for update` before counting,
so a dispatcher cannot send a message this batch is about to displace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from core.db import Connection, Database
from core.errors import InvalidInput, NotFound
from core.pressure import policy as policy_kind
from core.pressure.schemas import (
    CapRule,
    CapViolation,
    CustomerPressure,
    PressureAudit,
    PressurePolicy,
    RuleUsage,
)
from core.pressure.windows import window_bounds
from tenants.context import TenantContext
from tenants.overlay import effective_in

# Statuses that no longer count: never sent.
NOT_COUNTED = ("failed", "skipped")
# Messages of a campaign HQ governance exempted: like transactional ones, neither limited
# nor counted (so they can never push anyone else over a cap).
EXEMPT_TAG = "pressure-exempt"
_SEP = "\x1f"


async def policy_in(conn: Connection, tenant_id: str) -> PressurePolicy:
    return policy_kind.resolve(await effective_in(conn, tenant_id, policy_kind.KIND))


async def get_policy(db: Database, ctx: TenantContext) -> PressurePolicy:
    async with db.tenant_tx(ctx) as conn:
        return await policy_in(conn, ctx.tenant_id)


def rules_for(policy: PressurePolicy, category: str, tags: list[str] | tuple[str, ...]
              ) -> list[CapRule]:
    """Rules that limit a message of this category and tags on some channel."""
    if category == "transactional":
        return []
    return [r for r in policy.rules
            if (not r.categories or category in r.categories)
            and (not r.tags or set(r.tags) & set(tags))]


PARTITIONS = 256  # customers are locked by the first byte of their id


async def lock_tenant(conn: Connection, tenant_id: str) -> None:
    """Every customer of the tenant (all partitions, in order)."""
    await lock_partitions(conn, tenant_id, list(range(PARTITIONS)))


async def lock_partitions(conn: Connection, tenant_id: str, partitions: list[int]) -> None:
    """Transaction-scoped advisory locks on customer partitions (first byte of the
    customer id), always taken in ascending order so two plans can never deadlock."""
    for partition in sorted(set(partitions)):
        await conn.execute(
            "select pg_advisory_xact_lock(hashtextextended('relais.pressure:' || $1 || ':' "
            "|| ($2::int)::text, 0))", tenant_id, partition)


async def lock_candidates(conn: Connection, tenant_id: str, candidates: str) -> None:
    """The partitions of the customers still in `candidates` (`step is null`)."""
    rows = await conn.fetch(
        f"""select distinct get_byte(uuid_send(customer_id), 0) as p from {candidates}
            where step is null order by 1""")
    await lock_partitions(conn, tenant_id, [r["p"] for r in rows])


def rules_table(rules: list[CapRule], first: int) -> tuple[str, list[Any]]:
    """A `rules` relation (idx, rule, max, win, days, rchannel, cats, tags) as unnest of
    parameters $first..$first+7."""
    p = [f"${first + i}" for i in range(8)]
    sql = (f"select * from unnest({p[0]}::int[], {p[1]}::text[], {p[2]}::int[], "
           f"{p[3]}::text[], {p[4]}::int[], {p[5]}::text[], {p[6]}::text[], {p[7]}::text[]) "
           "as r(idx, rule, max, win, days, rchannel, cats_raw, tags_raw)")
    args = [list(range(len(rules))), [r.id for r in rules], [r.max for r in rules],
            [r.window for r in rules], [r.days or 0 for r in rules], [r.channel for r in rules],
            [_SEP.join(r.categories) for r in rules], [_SEP.join(r.tags) for r in rules]]
    return sql, args


def _split(expr: str) -> str:
    return f"coalesce(string_to_array(nullif({expr}, ''), E'\\x1f'), '{{}}')"


def window_key(at: str, tz: str) -> str:
    """SQL: the calendar period of rule `r` containing instant `at`, as its local start
    (a timestamp without time zone), NULL for rolling rules. Periods are compared by this
    key, never by boundary instants: a local midnight that happens twice (or never) on a
    DST change cannot leave an hour outside every period."""
    return (f"case when r.win = 'rolling' then null::timestamp "
            f"else relais_window_start(case when r.win = 'rolling' then 'day' else r.win end,"
            f" {at}, {tz}) end")


def rolling_bound(at: str, sign: str) -> str:
    """SQL: an end of the rolling span (at - N days, at + N days), NULL for calendar rules."""
    return (f"case when r.win = 'rolling' then {at} {sign} r.days * interval '24 hours' "
            f"end")


# Local period keys of a message for the customer's zone `tz`, computed once per message.
KEYS = """date_trunc('day', {at} at time zone {tz}) as day_key,
          date_trunc('week', {at} at time zone {tz}) as week_key,
          date_trunc('month', {at} at time zone {tz}) as month_key"""

# A message x (of plan_x) falls in the period w and is counted by its rule.
COUNTED_BY = """x.customer_id = w.customer_id
    and (w.rchannel = 'any' or x.channel = w.rchannel)
    and (cardinality(w.cats) = 0 or x.category = any(w.cats))
    and (cardinality(w.tags) = 0 or x.tags && w.tags)
    and case when w.rolling then x.at > w.w_start and x.at < w.w_end
             else w.w_key = case w.win when 'day' then x.day_key
                                       when 'week' then x.week_key
                                       else x.month_key end end"""
async def apply_caps(conn: Connection, rules: list[CapRule], *, candidates: str,
                     priority: int, step: int, lock_rows: bool = True) -> None:
    """Mark the rows of `candidates` (still `step is null`) that a cap refuses with
    `step` and reason `cap:<rule>` (sent alone fills it) or `arbitration:<rule>` (planned
    messages of higher priority fill it). Leaves `plan_w` (periods per candidate and rule)
    and `plan_x` (the counted history) for `displace`. Call under `lock_candidates`.

    `lock_rows=False` is for simulations, which write nothing."""
    # The counted history of the batch's customers, read once: within a month (or the
    # longest rolling span) of their send times.
    margin = f"interval '{max(33, *(r.days or 0 for r in rules))} days'"
    await conn.execute(f"""
        create temp table plan_x on commit drop as
        with c as (select customer_id, min(tz) as tz, min(send_at) as first,
                          max(send_at) as last
                   from {candidates} where step is null group by customer_id)
        select x.id, x.customer_id, x.channel, x.category, x.tags, x.priority, x.scheduled_at,
               x.planned_at, x.status = 'planned' as pending, x.source_type, x.source_id,
               coalesce(x.sent_at, x.scheduled_at) as at,
               {KEYS.format(at='coalesce(x.sent_at, x.scheduled_at)', tz='c.tz')}
        from messages x join c on c.customer_id = x.customer_id
        where x.category <> 'transactional' and x.status <> all($1::text[])
          and not x.tags @> array[$2::text]
          and coalesce(x.sent_at, x.scheduled_at) > c.first - {margin}
          and coalesce(x.sent_at, x.scheduled_at) < c.last + {margin}""",
        list(NOT_COUNTED), EXEMPT_TAG)
    await conn.execute("create index on plan_x (customer_id)")
    if lock_rows:
        # Lock the planned messages read (this batch may displace them) and take their
        # status as of the lock: the dispatcher claims with `skip locked`, so from here
        # it leaves them alone until we commit; one it claimed meanwhile counts as sent.
        await conn.execute("""
            with locked as (select m.id, m.status from messages m
                            where m.id in (select id from plan_x where pending)
                            order by m.id for update of m),
                 gone as (delete from plan_x x using locked l
                          where x.id = l.id and l.status = any($1::text[]))
            update plan_x x set pending = false from locked l
            where x.id = l.id and l.status <> 'planned'
              and l.status <> all($1::text[])""", list(NOT_COUNTED))
    await conn.execute("analyze plan_x (id, customer_id, pending)")
    # Each candidate x applicable rule: its period, and what is counted in it.
    rules_sql, rule_args = rules_table(rules, 2)
    await conn.execute(f"""
        create temp table plan_w on commit drop as
        with w as materialized (
            select m.customer_id, m.channel, m.send_at, m.tz, r.idx, r.rule, r.max,
                   r.rchannel, {_split('r.cats_raw')} as cats, {_split('r.tags_raw')} as tags,
                   r.win, r.win = 'rolling' as rolling,
                   {window_key('m.send_at', 'm.tz')} as w_key,
                   {rolling_bound('m.send_at', '-')} as w_start,
                   {rolling_bound('m.send_at', '+')} as w_end
            from {candidates} m join ({rules_sql}) r
                 on r.rchannel = 'any' or r.rchannel = m.channel
            where m.step is null),
        counted as (
            select w.customer_id, w.channel, w.idx,
                   count(*) filter (where not x.pending) as sent,
                   count(*) filter (where x.pending and (x.priority > $1 or
                       (x.priority = $1 and x.scheduled_at <= w.send_at))) as above,
                   count(*) filter (where x.pending) as pending
            from w join plan_x x on {COUNTED_BY}
            group by w.customer_id, w.channel, w.idx)
        select w.*, coalesce(c.sent, 0) as sent, coalesce(c.above, 0) as above,
               coalesce(c.pending, 0) - coalesce(c.above, 0) as below
        from w left join counted c using (customer_id, channel, idx)""",
        priority, *rule_args)
    await conn.execute("create index on plan_w (customer_id)")
    await conn.execute(f"""
        update {candidates} m set step = $1, reason = f.reason
        from (select distinct on (customer_id, channel) customer_id, channel,
                     case when sent >= max then 'cap:' else 'arbitration:' end || rule as reason
              from plan_w where sent + above >= max
              order by customer_id, channel, idx) f
        where f.customer_id = m.customer_id and f.channel = m.channel and m.step is null""",
        step)


async def displace(conn: Connection, rules: list[CapRule], *, chosen: str,
                   priority: int) -> list[dict[str, Any]]:
    """After the chosen messages (`chosen`: customer_id, channel, message_id, send_at,
    category, tags) are written: for each rule in turn, skip the planned messages ranked
    beyond the cap in the periods of the new ones. Returns the displaced messages.

    The new messages rank with the sent ones: they were admitted with
    sent + higher-ranked < max, so only planned messages ranked below them can fall
    beyond the cap."""
    await conn.execute(f"""
        insert into plan_x (id, customer_id, channel, category, tags, priority, scheduled_at,
                            planned_at, pending, source_type, source_id, at, day_key,
                            week_key, month_key)
        select o.message_id, o.customer_id, o.channel, o.category, o.tags, $1, o.send_at,
               now(), false, 'campaign', '', o.send_at,
               {KEYS.format(at='o.send_at', tz='w.tz')}
        from {chosen} o
        join (select distinct customer_id, tz from plan_w) w using (customer_id)
        where not exists (select 1 from plan_x x where x.id = o.message_id)""", priority)
    victims: list[dict[str, Any]] = []
    for idx, rule in enumerate(rules):
        rows = await conn.fetch(f"""
            with ranked as (
                select x.id, x.pending, x.customer_id, x.source_type, x.source_id, w.max,
                       row_number() over (partition by w.customer_id
                           order by x.pending, x.priority desc, x.scheduled_at, x.planned_at,
                                    x.id) as pos
                from plan_w w
                join {chosen} o on o.customer_id = w.customer_id and o.channel = w.channel
                join plan_x x on {COUNTED_BY}
                -- only periods the new message may push over the cap
                where w.idx = $1 and w.below > 0 and w.sent + w.above + w.below + 1 > w.max)
            , gone as (delete from plan_x x using ranked r
                       where x.id = r.id and r.pending and r.pos > r.max
                       returning x.id, x.customer_id, x.source_type, x.source_id)
            select distinct id, customer_id, source_type, source_id from gone""", idx)
        victims += [dict(r) | {"rule": rule.id} for r in rows]
    return victims


async def audit(conn: Connection, tenant_tz: str, rules: list[CapRule], *,
                source_id: str | None = None, limit: int = 100) -> list[CapViolation]:
    """Every period over a rule's cap, counted from the contact history: calendar periods
    in the customer's zone, and for rolling rules every N-day window starting at a counted
    message. With `source_id`, only periods containing a message of that source."""
    if not rules:
        return []
    rules_sql, rule_args = rules_table(rules, 4)
    rows = await conn.fetch(f"""
        with r as ({rules_sql}),
        x as (select m.id, m.customer_id, m.channel, m.category, m.tags, m.source_id,
                     coalesce(m.sent_at, m.scheduled_at) as at, coalesce(z.name, $1) as tz
              from messages m
              left join preferences p on p.customer_id = m.customer_id
              left join pg_timezone_names z on z.name = p.timezone
              where m.category <> 'transactional' and m.status <> all($2::text[])
                and not m.tags @> array['{EXEMPT_TAG}']),
        hit as (select x.*, r.idx, r.rule, r.max, r.win, r.days,
                       {window_key('x.at', 'x.tz')} as w_key
                from x join r on (r.rchannel = 'any' or x.channel = r.rchannel)
                 and (r.cats_raw = '' or x.category = any({_split('r.cats_raw')}))
                 and (r.tags_raw = '' or x.tags && {_split('r.tags_raw')})),
        calendar as (select customer_id, rule, max, w_key::text || ' ' || min(tz) as period,
                            count(*) as n, bool_or(source_id = $3) as touched
                     from hit where win <> 'rolling'
                     group by customer_id, rule, max, w_key having count(*) > max),
        rolling as (select a.customer_id, a.rule, a.max, a.at::text as period, count(*) as n,
                           bool_or(b.source_id = $3) as touched
                    from hit a join hit b on b.customer_id = a.customer_id
                         and b.idx = a.idx and b.at >= a.at
                         and b.at < a.at + a.days * interval '24 hours'
                    where a.win = 'rolling'
                    group by a.customer_id, a.rule, a.max, a.at, a.id
                    having count(*) > a.max)
        select customer_id::text, rule, period, n, max from (
            select * from calendar union all select * from rolling) v
        where $3::text is null or touched
        order by customer_id, rule, period limit {int(limit)}""",
        tenant_tz, list(NOT_COUNTED), source_id, *rule_args)
    return [CapViolation(customer_id=r["customer_id"], rule=r["rule"],
                         window_start=r["period"], count=r["n"], max=r["max"])
            for r in rows]


async def customer_usage(conn: Connection, tenant_tz: str, rules: list[CapRule],
                         customer_id: UUID, at: datetime) -> tuple[str, list[int]]:
    """(the customer's zone, what each rule counts in its period around `at`)."""
    if not rules:
        return tenant_tz, []
    rules_sql, rule_args = rules_table(rules, 4)
    rows = await conn.fetch(f"""
        with r as ({rules_sql}),
        c as (select coalesce((select z.name from preferences p
                               join pg_timezone_names z on z.name = p.timezone
                               where p.customer_id = $1), $2) as tz),
        w as (select r.idx, r.max, r.rchannel, r.win, r.win = 'rolling' as rolling,
                     {_split('r.cats_raw')} as cats, {_split('r.tags_raw')} as tags,
                     $1::uuid as customer_id, c.tz,
                     {window_key('$3::timestamptz', 'c.tz')} as w_key,
                     {rolling_bound('$3::timestamptz', '-')} as w_start,
                     {rolling_bound('$3::timestamptz', '+')} as w_end
              from r cross join c),
        x as (select m.customer_id, m.channel, m.category, m.tags,
                     coalesce(m.sent_at, m.scheduled_at) as at,
                     {KEYS.format(at='coalesce(m.sent_at, m.scheduled_at)', tz='c.tz')}
              from messages m cross join c
              where m.customer_id = $1 and m.category <> 'transactional'
                and m.status <> all(array['failed', 'skipped'])
                and not m.tags @> array['{EXEMPT_TAG}'])
        select w.tz, (select count(*) from x where {COUNTED_BY})::int as counted
        from w order by w.idx""", customer_id, tenant_tz, at, *rule_args)
    return rows[0]["tz"], [r["counted"] for r in rows]


async def customer_pressure(db: Database, ctx: TenantContext, customer_id: str,
                            at: datetime | None = None) -> CustomerPressure:
    """What each cap rule counts for one customer in the period around `at` (now)."""
    try:
        cid = UUID(customer_id)
    except ValueError:
        raise NotFound(f"customer {customer_id!r} not found") from None
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        raise InvalidInput("`at` needs a time zone offset", field="at")
    async with db.tenant_tx(ctx) as conn:
        if not await conn.fetchval("select true from customers where id = $1", cid):
            raise NotFound(f"customer {customer_id!r} not found")
        policy = await policy_in(conn, ctx.tenant_id)
        tz, counted = await customer_usage(conn, ctx.timezone, list(policy.rules), cid, at)
    usage = []
    for rule, n in zip(policy.rules, counted, strict=True):
        start, end = window_bounds(rule, at, tz)
        usage.append(RuleUsage(rule=rule.id, max=rule.max, window_start=start.isoformat(),
                               window_end=end.isoformat(), counted=n,
                               remaining=max(rule.max - n, 0)))
    return CustomerPressure(customer_id=str(cid), at=at.isoformat(), timezone=tz, rules=usage)


async def audit_tenant(db: Database, ctx: TenantContext, *,
                       source_id: str | None = None) -> PressureAudit:
    """Cap violations in the tenant's contact history under its current policy."""
    async with db.tenant_tx(ctx) as conn:
        policy = await policy_in(conn, ctx.tenant_id)
        violations = await audit(conn, ctx.timezone, list(policy.rules), source_id=source_id)
    return PressureAudit(rules_checked=len(policy.rules), violations=violations)
