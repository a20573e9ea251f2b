"""`set_consents_many` (imports) writes what one `set_consents` call per customer writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from core.consents.schemas import ConsentChange, ConsentChanges
from core.consents.service import set_consents, set_consents_many
from core.errors import RelaisError
from tenants.context import SYSTEM
from tenants.service import tenant_context
from tests.customers.factories import unique


async def _identify(tenant, identifiers) -> str:
    r = await tenant.post("/identify", {"identifiers": identifiers})
    assert r.status_code == 200, r.text
    return r.json()["customer_id"]


def _change(channel: str, purpose: str, status: str, at: str | None = None,
            source: str = "import") -> ConsentChange:
    return ConsentChange(channel=channel, purpose=purpose, status=status,
                         legal_basis="consent", source=source, proof=f"{status} {at}",
                         at=datetime.fromisoformat(at) if at else None)


def _script() -> list[list[ConsentChange]]:
    """Per customer: the changes of one import batch."""
    return [
        [_change("email", "marketing", "granted", "2026-01-10T10:00:00+00:00"),
         _change("sms", "traffic_info", "granted")],
        # Two decisions on one consent: the more recent wins, whatever the order.
        [_change("email", "marketing", "withdrawn", "2026-03-01T08:00:00+00:00"),
         _change("email", "marketing", "granted", "2026-02-01T08:00:00+00:00")],
        # Older than what is stored (set below): history only.
        [_change("push", "loyalty", "denied", "2025-06-01T08:00:00+00:00")],
        # Dated in the future: this customer fails alone.
        [_change("email", "service", "granted", "2999-01-01T00:00:00+00:00")],
    ]


async def _state(db, ctx, customer_id: str) -> tuple[list, list, int]:
    async with db.tenant_tx(ctx) as conn:
        state = await conn.fetch(
            """select channel, purpose, status, source, proof,
                      updated_at > now() - interval '1 hour' as recent
               from consents where customer_id = $1 order by channel, purpose""",
            uuid.UUID(customer_id))
        history = await conn.fetch(
            """select channel, purpose, status, proof from consent_history
               where customer_id = $1 order by id""", uuid.UUID(customer_id))
        audits = await conn.fetchval(
            """select count(*) from audit_log where action = 'consents.changed'
               and target_id = $1""", customer_id)
    return [tuple(r) for r in state], [tuple(r) for r in history], audits


async def test_batch_consents_match_one_call_per_customer(tenant, db):
    ctx = await tenant_context(db, tenant.id, SYSTEM)
    one_by_one = [await _identify(tenant, {"app_user_id": unique("one")}) for _ in range(4)]
    batched = [await _identify(tenant, {"app_user_id": unique("many")}) for _ in range(4)]
    stored_earlier = [_change("push", "loyalty", "granted", "2026-01-01T00:00:00+00:00")]
    for cid in (one_by_one[2], batched[2]):
        await set_consents(db, ctx, uuid.UUID(cid), ConsentChanges(items=stored_earlier))

    errors_one = {}
    for cid, changes in zip(one_by_one, _script(), strict=True):
        try:
            await set_consents(db, ctx, uuid.UUID(cid), ConsentChanges(items=changes))
        except RelaisError as exc:  # compared with the batch's errors
            errors_one[cid] = exc
    errors_many = await set_consents_many(
        db, ctx, {uuid.UUID(cid): changes for cid, changes in zip(batched, _script(),
                                                                   strict=True)})

    assert [str(c) for c in errors_many] == [batched[3]]
    assert list(errors_one) == [one_by_one[3]]
    assert [(e.detail, e.field) for e in errors_many.values()] == \
        [(e.detail, e.field) for e in errors_one.values()]
    for a, b in zip(one_by_one, batched, strict=True):
        assert await _state(db, ctx, a) == await _state(db, ctx, b)
    state, history, audits = await _state(db, ctx, batched[1])
    assert [s[2] for s in state] == ["withdrawn"] and len(history) == 2 and audits == 1
    state, history, _ = await _state(db, ctx, batched[2])
    assert [s[2] for s in state] == ["granted"] and [h[2] for h in history] == \
        ["granted", "denied"]


async def test_batch_consents_follow_merges_and_refuse_unknown_and_erased(tenant, db):
    ctx = await tenant_context(db, tenant.id, SYSTEM)
    email, uid = f"{unique('cm')}@laposte.net", unique("cm")
    older = await _identify(tenant, {"email": email})
    newer = await _identify(tenant, {"app_user_id": uid})
    assert await _identify(tenant, {"email": email, "app_user_id": uid}) == older
    erased = await _identify(tenant, {"app_user_id": unique("gone")})
    assert (await tenant.post(f"/customers/{erased}/erase")).status_code == 200
    unknown = uuid.uuid4()
    now = datetime.now(UTC).isoformat()
    errors = await set_consents_many(db, ctx, {
        uuid.UUID(newer): [_change("email", "marketing", "granted", now)],
        uuid.UUID(erased): [_change("email", "marketing", "granted", now)],
        unknown: [_change("email", "marketing", "granted", now)]})
    assert {k: (v.status, v.detail) for k, v in errors.items()} == {
        uuid.UUID(erased): (422, "this customer was erased (GDPR)"),
        unknown: (404, "no customer with this id")}
    state, history, audits = await _state(db, ctx, older)  # the survivor holds it
    assert [s[:3] for s in state] == [("email", "marketing", "granted")]
    assert len(history) == 1 and audits == 1
