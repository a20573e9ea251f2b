"""Deciding one batch of a campaign's audience, set-based.

Two temp tables hold a batch: `plan_c` (one row per customer: zone, send time after quiet
hours, holdout / control buckets, variant) and `plan_m` (one row per customer x campaign
channel, ranked: the customer's preferred channels first, then the campaign's order). Each
filter of the funnel is a condition on those rows, in this order:

    1 suppression   erased or unknown profile, address on the suppression list
    2 address       no address for the channel, or not a valid one
    3 consent       channel x purpose not granted (transactional campaigns need none)
    4 quiet_hours   abort mode inside quiet hours, or no allowed time at all
    5 holdout       universal holdout (marketing only, within the group's period)
    6 control_group the campaign's control group
    7 pressure      caps and arbitration (core.pressure.service.apply_caps)
    8 dedupe        this campaign already has a message for the customer

The first failing condition of a row is its step. A customer is planned on its best-ranked
surviving channel (the others are recorded as deduped: one communication per customer per
campaign), else excluded at the furthest step any of its channels reached. Steps 1-6 are
one INSERT each for `plan_c` and `plan_m`; no rule is checked row by row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from core.db import Connection
from core.pressure.schemas import CapRule

STEPS = ("suppression", "address", "consent", "quiet_hours", "holdout", "control_group",
         "pressure", "dedupe")
PRESSURE_STEP = STEPS.index("pressure") + 1
DEDUPE_STEP = STEPS.index("dedupe") + 1
ADDRESS_SQL = {"email": "c.email", "sms": "c.phone", "whatsapp": "c.phone",
               "push": "c.push_token", "webhook": "c.customer_id::text"}
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+[1-9][0-9]{6,14}$"


@dataclass(frozen=True)
class PlanSpec:
    """Everything a batch decision depends on, fixed when planning starts (so a resumed
    plan decides the remaining batches exactly as the first run would have)."""

    campaign_id: UUID
    tenant_tz: str
    category: str
    purpose: str
    priority: int
    channels: tuple[str, ...]
    templates: dict[str, str]
    variant_names: tuple[str, ...]
    variant_thresholds: tuple[int, ...]
    variant_templates: dict[str, dict[str, str]]
    tags: tuple[str, ...]
    data: dict[str, Any]
    schedule_kind: str
    send_at: datetime
    local_date: date | None
    local_time: time | None
    started_at: datetime
    salt: str
    control_buckets: int
    apply_quiet: bool = True
    abort_quiet: bool = False
    tenant_quiet: tuple[time, time] | None = None
    holdout: tuple[str, int, datetime, datetime] | None = None
    rules: tuple[CapRule, ...] = ()
    pads: tuple[bytes, bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256 inner and outer pads of `key`, so SQL can compute
    sha256(opad || sha256(ipad || m)) — the same digest as `hmac.new(key, m, sha256)` —
    and match the suppression list set-based."""
    if len(key) > 64:
        import hashlib
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


async def load_customers(conn: Connection, spec: PlanSpec, ids: list[UUID]) -> None:
    """`plan_c`: zone, send time (`q_at`, after quiet hours), holdout, control group,
    variant. In abort mode a customer whose send time moved is excluded at step 4."""
    variant = "null::text"
    if spec.variant_names:
        # Variant i covers buckets [start_i, start_i+1): width_bucket over the starts
        # hashes each customer once, whatever the number of variants.
        starts = ",".join(str(int(t)) for t in (0, *spec.variant_thresholds[:-1]))
        variant = (f"(width_bucket(relais_bucket('variant:' || $4, u.id::text), "
                   f"array[{starts}]) - 1)::text")
    # Every parameter is typed whatever the schedule, so the statement always prepares.
    base_at = ("greatest(case when $5::date is null then $7::timestamptz "
               "else ($5::date + $6::time) at time zone c.tz end, $8::timestamptz)")
    h = spec.holdout or (None, None, None, None)
    await conn.execute(f"""
        create temp table plan_c on commit drop as
        with zones as materialized (
            select z.name from pg_timezone_names z
            where z.name in (select distinct p.timezone from preferences p
                             where p.customer_id = any($1::uuid[]))),
        c as (
            select u.id as customer_id, s.id is null as missing,
                   s.erased_at is not null as erased, s.email, s.phone,
                   s.attributes->>'push_token' as push_token,
                   coalesce(p.channels, '{{}}') as preferred,
                   p.quiet_start as cq_s, p.quiet_end as cq_e,
                   coalesce((select name from zones where name = p.timezone), $2) as tz,
                   relais_bucket($4, u.id::text) < $3 as control, {variant} as variant,
                   coalesce(relais_bucket($9::text, u.id::text) < $10::int, false) as hold
            from unnest($1::uuid[]) as u(id)
            -- A batch is a range of customer ids (see core.campaigns.audience): read that
            -- range of the big tables through their primary keys, not every profile
            left join (select * from customers
                       where id between $11::uuid and $12::uuid and id = any($1::uuid[])) s
                   on s.id = u.id
            left join (select * from preferences
                       where customer_id between $11::uuid and $12::uuid
                         and customer_id = any($1::uuid[])) p
                   on p.customer_id = u.id)
        select c.*, {base_at} as base_at, {base_at} as q_at, false as moved,
               null::text as quiet_reason, false as email_suppressed,
               false as phone_suppressed
        from c""",
        ids, spec.tenant_tz, spec.control_buckets, spec.salt, spec.local_date,
        spec.local_time, spec.send_at, spec.started_at, h[0], h[1], min(ids), max(ids))
    await conn.execute("alter table plan_c add primary key (customer_id)")
    # Temp tables have no statistics until analysed; the columns joined on are enough (and
    # far cheaper than sampling every column).
    await conn.execute("analyze plan_c (customer_id)")
    if spec.pads is not None:
        await _suppressions(conn, spec.pads)
    if spec.apply_quiet:
        await _quiet_hours(conn, spec)
    # `held`: in the holdout group's buckets and sent within its period.
    await conn.execute(
        """update plan_c set hold = false
           where hold and not (q_at >= $1::timestamptz and q_at < $2::timestamptz)""",
        h[2], h[3])


async def _quiet_hours(conn: Connection, spec: PlanSpec) -> None:
    """Move `q_at` past the tenant's, then the customer's, quiet hours, three passes (see
    core.pressure.windows.next_allowed), one UPDATE per pass touching only the rows that
    move. (Nesting the calls in one expression would make PostgreSQL inline each inner
    call into every use of its argument: exponential.)"""
    tenant = spec.tenant_quiet or (None, None)
    tenant_pass = """update plan_c set q_at = relais_quiet_until(q_at, tz, $1::time, $2::time),
                            moved = true
                     where {only} relais_quiet_until(q_at, tz, $1::time, $2::time) <> q_at"""
    customer_pass = """update plan_c set q_at = relais_quiet_until(q_at, tz, cq_s, cq_e),
                              moved = true
                       where {only} cq_s is not null
                         and relais_quiet_until(q_at, tz, cq_s, cq_e) <> q_at"""
    for n in range(3):
        only = "" if n == 0 else "moved and"
        await conn.execute(tenant_pass.format(only=only), *tenant)
        await conn.execute(customer_pass.format(only=only))
    await conn.execute(
        """update plan_c set quiet_reason = case
               when relais_quiet_until(q_at, tz, $1::time, $2::time) <> q_at
                    or relais_quiet_until(q_at, tz, cq_s, cq_e) <> q_at
                   then 'quiet_hours_no_allowed_time'
               when $3::bool then 'quiet_hours' end
           where moved""", *tenant, spec.abort_quiet)


async def _suppressions(conn: Connection, pads: tuple[bytes, bytes]) -> None:
    """Addresses on the suppression list (keyed hashes, see `hmac_pads`), once per
    customer and kind; only run when the tenant has a suppression list at all."""
    for kind, column, value in (("email", "email", "lower(btrim(email))"),
                                ("phone", "phone", "btrim(phone)")):
        await conn.execute(f"""
            update plan_c set {kind}_suppressed = true
            where {column} is not null
              and encode(sha256($2::bytea || sha256($1::bytea || convert_to(
                      '{kind}:' || {value}, 'UTF8'))), 'hex')
                  in (select value_hash from suppressions where kind = '{kind}')""", *pads)


def _conditions(spec: PlanSpec) -> list[tuple[str, int, str]]:
    needs_consent = spec.category != "transactional"
    return [
        ("c.missing", 1, "'unknown_customer'"),
        ("c.erased", 1, "'erased'"),
        ("(ch.channel = 'email' and c.email_suppressed) or "
         "(ch.channel in ('sms', 'whatsapp') and c.phone_suppressed)", 1, "'suppressed'"),
        ("a.address is null or btrim(a.address) = ''", 2, "'no_address'"),
        (f"(ch.channel = 'email' and a.address !~ '{_EMAIL}') or "
         f"(ch.channel in ('sms', 'whatsapp') and a.address !~ '{_PHONE}')",
         2, "'invalid_address'"),
        (f"{'true' if needs_consent else 'false'} and k.status is distinct from 'granted'",
         3, "'consent_' || coalesce(k.status, 'missing')"),
        ("c.quiet_reason is not null", 4, "c.quiet_reason"),
        ("c.hold", 5, "'universal_holdout'"),
        ("c.control", 6, "'control_group'"),
    ]


async def load_candidates(conn: Connection, spec: PlanSpec, ids: list[UUID]) -> None:
    # One CASE per candidate gives "<step> <reason>" (steps 1-6 are one digit): each
    # condition is evaluated once.
    verdict = " ".join(f"when {cond} then '{n} ' || {r}" for cond, n, r in _conditions(spec))
    address = " ".join(f"when '{ch}' then {sql}" for ch, sql in ADDRESS_SQL.items())
    await conn.execute(f"""
        create temp table plan_m on commit drop as
        with k as materialized (
            select customer_id, channel, status from consents
            where customer_id between $4::uuid and $5::uuid
              and customer_id = any($3::uuid[]) and purpose = $2)
        select c.customer_id, ch.channel,
               coalesce(array_position(c.preferred, ch.channel), 100 + ch.ord::int) as rank,
               c.q_at as send_at, c.tz, c.variant,
               left(v.verdict, 1)::smallint as step, substr(v.verdict, 3) as reason
        from plan_c c
        cross join unnest($1::text[]) with ordinality as ch(channel, ord)
        cross join lateral (select case ch.channel {address} end as address) a
        left join k on k.customer_id = c.customer_id and k.channel = ch.channel
        cross join lateral (select case {verdict} end as verdict) v
        """, list(spec.channels), spec.purpose, ids, min(ids), max(ids))
    await conn.execute("alter table plan_m add primary key (customer_id, channel)")
    await conn.execute("analyze plan_m (customer_id, channel, step)")


async def dedupe(conn: Connection, spec: PlanSpec, ids: list[UUID]) -> None:
    """One communication per customer per campaign: a customer this campaign already has a
    message for (on any channel) gets none. Reads the campaign's messages in the batch's
    range of customer ids only (index `messages_source`), never all it planned so far."""
    await conn.execute(f"""
        update plan_m m set step = {DEDUPE_STEP}, reason = 'already_contacted'
        from (select distinct customer_id from messages
              where source_type = 'campaign' and source_id = $1
                and customer_id between $2::uuid and $3::uuid) x
        where x.customer_id = m.customer_id and m.step is null""",
        str(spec.campaign_id), min(ids), max(ids))


async def choose(conn: Connection, spec: PlanSpec, tenant_id: str) -> None:
    """Best surviving channel per customer → `plan_o` (every customer's outcome) and
    `plan_chosen` (the messages to enqueue, with their deterministic ids: the SQL twin of
    `core.messaging.ids.message_id` over tenant, source, step = variant, customer,
    occurrence)."""
    # One pass: the outcome is the best candidate (passing, else the furthest step, then
    # the best rank); `channels` keeps every channel's reason (null: it passed too).
    best = "order by coalesce(step, 99) desc, rank"
    await conn.execute(f"""
        create temp table plan_o on commit drop as
        select customer_id, (array_agg(channel {best}))[1] as channel,
               (array_agg(step {best}))[1] as step, (array_agg(reason {best}))[1] as reason,
               min(send_at) as send_at, min(variant) as variant,
               jsonb_object_agg(channel, reason) as channels
        from plan_m group by customer_id""")
    await conn.execute("""
        create temp table plan_chosen on commit drop as
        with o as (select o.*, coalesce(($3::text[])[o.variant::int + 1], '') as variant_name
                   from plan_o o where o.step is null)
        select o.customer_id, o.channel, o.send_at, o.variant_name as step,
               coalesce($2::jsonb -> o.variant ->> o.channel, $1::jsonb ->> o.channel)
                   as template_id,
               $4::text as category, $5::text[] as tags,
               'm' || left(encode(sha256(convert_to(concat_ws(E'\\x1f', $6::text, 'campaign',
                   $7::text, o.variant_name, o.customer_id::text, ''), 'UTF8')), 'hex'), 32)
                   as message_id
        from o""",
        spec.templates, spec.variant_templates, list(spec.variant_names) or [None],
        spec.category, list(spec.tags), tenant_id, str(spec.campaign_id))


async def record_recipients(conn: Connection, spec: PlanSpec) -> tuple[int, int]:
    """One row per customer of the batch; returns (planned, excluded)."""
    names = spec.variant_names
    row = await conn.fetchrow("""
        with stored as (
            insert into campaign_recipients (tenant_id, campaign_id, customer_id, step,
                reason, channel, variant, scheduled_at, delayed_from, message_id, channels)
            select current_setting('relais.tenant_id'), $1, o.customer_id,
                   case when o.step is null then 'planned' else ($2::text[])[o.step] end,
                   o.reason, case when o.step is null then o.channel end,
                   case when o.step is null then ($3::text[])[o.variant::int + 1] end,
                   case when o.step is null then o.send_at end,
                   case when o.step is null and c.moved then c.base_at end,
                   ch.message_id,
                   case when o.step is null then o.channels - o.channel else o.channels end
            from plan_o o join plan_c c using (customer_id)
            left join plan_chosen ch using (customer_id)
            returning step)
        select count(*) filter (where step = 'planned') as planned,
               count(*) filter (where step <> 'planned') as excluded
        from stored""", spec.campaign_id, list(STEPS), list(names) or [None])
    return row["planned"], row["excluded"]


async def simulated_counts(conn: Connection, spec: PlanSpec) -> list[Any]:
    """Funnel rows (step, reason, channel, variant, delayed, n) of the temp tables, for
    simulations that never write recipients."""
    return await conn.fetch("""
        select case when o.step is null then 'planned' else ($1::text[])[o.step] end as step,
               o.reason, case when o.step is null then o.channel end as channel,
               case when o.step is null then ($2::text[])[o.variant::int + 1] end as variant,
               count(*) filter (where o.step is null and c.moved)::int as delayed,
               count(*)::int as n
        from plan_o o join plan_c c using (customer_id)
        group by 1, 2, 3, 4""", list(STEPS), list(spec.variant_names) or [None])


async def drop_batch_tables(conn: Connection) -> None:
    """Simulations run several batches in one transaction."""
    await conn.execute("drop table if exists plan_c, plan_m, plan_o, plan_w, plan_x, "
                       "plan_chosen")
