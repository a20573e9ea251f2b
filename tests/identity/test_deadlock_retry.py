"""Ingestion transactions aborted by a genuine PostgreSQL deadlock are retried from the
start and succeed, once, losing nothing already accepted.

The deadlocks are real: a second transaction (as the superuser, with a long
`deadlock_timeout` so PostgreSQL picks the ingestion as the victim) locks rows the ingestion
needs, waits until the ingestion blocks on them, then asks for the identity lock the
ingestion holds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from core.events.retry import retrying_tenant_tx
from core.identity.resolve import LOCK_NAMESPACE
from tenants.context import SYSTEM
from tenants.service import tenant_context
from tests.conftest import auth
from tests.plugins.recorder import Recorder, enable, installed

T = TypeVar("T")


@pytest.fixture
async def superuser(services) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(services.admin_dsn, database=services.database)
    yield conn
    await conn.close()


async def _blocked_by(conn: asyncpg.Connection) -> None:
    """Until another backend waits for a lock `conn` holds."""
    async with asyncio.timeout(10):  # PostgreSQL offers no notification of a lock wait
        while True:
            if await conn.fetchval("select exists (select 1 from pg_stat_activity "
                                   "where pg_backend_pid() = any(pg_blocking_pids(pid)))"):
                return
            await asyncio.sleep(0.01)


async def _deadlock(conn: asyncpg.Connection, tenant_id: str, customer_id: str,
                    identity_lock: str, ingest: Callable[[], Awaitable[T]]) -> T:
    """Hold `customer_id`'s row, then start `ingest()`; once the ingestion waits for the
    row, take the tenant's identity lock (`shared` or `exclusive`), which the ingestion
    holds: a cycle. PostgreSQL aborts the ingestion (it waited first, and this session's
    long timeout keeps it from being chosen); this transaction commits and the retried
    ingestion's answer is returned. (The row is locked before the ingestion starts: started
    together, the ingestion could get past the row first and never wait.)"""
    async with conn.transaction():
        await conn.execute("set local deadlock_timeout = '60s'")
        await conn.execute("select 1 from customers where tenant_id = $1 and id = $2 "
                           "for update", tenant_id, uuid.UUID(customer_id))
        request = asyncio.create_task(ingest())
        await _blocked_by(conn)
        function = ("pg_advisory_xact_lock_shared" if identity_lock == "shared"
                    else "pg_advisory_xact_lock")
        await conn.execute(f"select {function}($1, hashtext($2))", LOCK_NAMESPACE, tenant_id)
    return await request


class Net:
    def __init__(self, client, tenant_id: str, key: str) -> None:
        self.client, self.id, self.key = client, tenant_id, key

    async def post(self, path: str, body: object):
        return await self.client.post(f"/v1/tenants/{self.id}{path}", json=body,
                                      headers=auth(self.key))

    async def customer(self, identifiers: dict) -> str:
        r = await self.post("/identify", {"identifiers": identifiers})
        assert r.status_code == 200, r.text
        return r.json()["customer_id"]


@pytest.fixture
async def net(client, make_tenant, make_key) -> Net:
    tenant = await make_tenant("dl")
    return Net(client, tenant.id, await make_key(tenant.id))


def _retries(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "relais.ingestion"
            and "retrying" in r.getMessage()]


async def _audited(superuser, tenant_id: str, action: str) -> int:
    return await superuser.fetchval(
        "select count(*) from audit_log where tenant_id = $1 and action = $2", tenant_id, action)


async def test_a_deadlocked_fast_path_is_retried_and_succeeds_once(net, superuser, caplog):
    customer = await net.customer({"email": "ana@tcl.fr"})
    with caplog.at_level(logging.WARNING, logger="relais.ingestion"):
        # The fast path holds the identity lock (shared) and waits for the profile's row.
        r = await _deadlock(superuser, net.id, customer, "exclusive", lambda: net.post(
            "/identify", {"identifiers": {"email": "ana@tcl.fr"},
                          "traits": {"first_name": "Ana"}, "message_id": "id-1"}))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["customer_id"]) == ("accepted", customer)
    [retry] = _retries(caplog)
    assert retry.error == "DeadlockDetectedError"
    profile = (await net.client.get(f"/v1/tenants/{net.id}/customers/{customer}",
                                    headers=auth(net.key))).json()["profile"]
    assert profile["first_name"] == "Ana"
    # The aborted attempt left nothing behind: one event, one audit entry for the call.
    assert await superuser.fetchval(
        "select count(*) from events where tenant_id = $1 and message_id = 'id-1'", net.id) == 1
    assert await _audited(superuser, net.id, "customers.identified") == 2


async def test_a_deadlocked_merge_is_retried_alone_keeping_the_fast_path_accepted(
        app, client, hq_key, net, superuser, caplog):
    recorder = Recorder()
    with installed(app, ("recorder", recorder)):
        await enable(client, hq_key, net.id, net.key)
        older = await net.customer({"email": "ben@tcl.fr"})
        newer = await net.customer({"phone": "+33622000001"})
        batch = {"items": [
            # A new profile: the fast path stores it and commits.
            {"message_id": "ev-1", "type": "app_opened",
             "identifiers": {"email": "new@tcl.fr"}},
            # Links the two profiles: merged by the slow path, in its own transaction.
            {"message_id": "ev-2", "type": "app_opened",
             "identifiers": {"email": "ben@tcl.fr", "phone": "+33622000001"}}]}
        with caplog.at_level(logging.WARNING, logger="relais.ingestion"):
            # The slow path holds the identity lock (exclusive) and waits for the survivor.
            r = await _deadlock(superuser, net.id, older, "shared",
                                lambda: net.post("/events:batch", batch))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "accepted"]
    assert results[1]["customer_id"] == older
    assert len(_retries(caplog)) == 1
    merges = await superuser.fetch(
        "select survivor_id, merged_id from customer_merges where tenant_id = $1", net.id)
    assert [(str(m[0]), str(m[1])) for m in merges] == [(older, newer)]
    events, told = recorder.calls(net.id)
    assert [[e.message_id for e in batch] for batch in events] == [["ev-1", "ev-2"]]
    assert [[(str(m.survivor_id), str(m.merged_id)) for m in b] for b in told] == [
        [(older, newer)]]


async def _opposite_order(db, ctx, rows: list[uuid.UUID], attempts: int | None
                          ) -> tuple[list[object], int]:
    """Two transactions through the retry helper lock the same two profiles in opposite
    orders, each waiting until the other holds its first row: a real deadlock."""
    held = [asyncio.Event(), asyncio.Event()]
    calls = 0

    def work(me: int) -> Callable[[asyncpg.Connection], Awaitable[str]]:
        async def locked(conn: asyncpg.Connection) -> str:
            nonlocal calls
            calls += 1
            first, second = rows if me == 0 else rows[::-1]
            await conn.execute("select 1 from customers where id = $1 for update", first)
            held[me].set()
            await held[1 - me].wait()
            await conn.execute("select 1 from customers where id = $1 for update", second)
            return f"worker {me}"
        return locked

    options = {} if attempts is None else {"attempts": attempts}
    outcome = await asyncio.gather(*(retrying_tenant_tx(db, ctx, work(me), **options)
                                     for me in (0, 1)), return_exceptions=True)
    return outcome, calls


async def test_the_retry_helper_survives_a_real_deadlock_and_gives_up_when_told(db, net):
    ctx = await tenant_context(db, net.id, SYSTEM)
    rows = [uuid.UUID(await net.customer({"email": f"{n}@tcl.fr"})) for n in ("cy", "di")]
    outcome, calls = await _opposite_order(db, ctx, rows, attempts=None)
    assert outcome == ["worker 0", "worker 1"] and calls == 3  # the victim ran twice
    # With a single attempt the victim's deadlock reaches the caller.
    outcome, calls = await _opposite_order(db, ctx, rows, attempts=1)
    assert calls == 2
    assert sorted(type(o).__name__ for o in outcome) == ["DeadlockDetectedError", "str"]


async def test_other_errors_are_not_retried(db, net):
    ctx = await tenant_context(db, net.id, SYSTEM)
    calls = 0

    async def divide(conn: asyncpg.Connection) -> None:
        nonlocal calls
        calls += 1
        await conn.execute("select 1 / 0")

    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await retrying_tenant_tx(db, ctx, divide)
    assert calls == 1
