"""Stage evaluation on the default canvas: one stage each, transitions as events."""

from __future__ import annotations

from core.lifecycle.service import evaluate
from core.segments import definition as d
from core.segments.membership import refresh_segment
from core.segments.schemas import SegmentCreate
from core.segments.service import create_segment
from tenants import overlay
from tenants.context import SYSTEM
from tenants.service import context_for
from tests.conftest import auth
from tests.lifecycle.conftest import make_town
from tests.segments.factories import track, trips

EXPECTED = {"pia": "prospect", "nina": "new", "andy": "active", "lola": "loyal",
            "ivan": "inactive", "dora": "inactive", "lars": "lapsed", "fred": "active"}


async def _stages(db, town) -> dict[str, str]:
    async with db.tenant_tx(town.ctx) as conn:
        rows = await conn.fetch("select id, stage from customers")
    by_id = {r["id"]: r["stage"] for r in rows}
    return {who: by_id[cid] for who, cid in town.ids.items()}


async def _transitions(db, town) -> list[tuple[str, str | None, str]]:
    async with db.tenant_tx(town.ctx) as conn:
        rows = await conn.fetch(
            """select customer_id, properties from events where type = 'stage_changed'
               order by id""")
    names = {cid: who for who, cid in town.ids.items()}
    return [(names[r["customer_id"]], r["properties"]["from"], r["properties"]["to"])
            for r in rows]


async def test_every_customer_gets_one_stage_and_changes_become_events(db, town):
    first = await evaluate(db, town.ctx)
    assert (first.status, first.evaluated, first.changed) == ("done", 8, 8)
    assert await _stages(db, town) == EXPECTED
    assert sorted(await _transitions(db, town)) == sorted(
        (who, None, stage) for who, stage in EXPECTED.items())
    # fred was active; his trips fell below half of his previous average: fragile.
    second = await evaluate(db, town.ctx)
    assert second.changed == 1
    assert (await _transitions(db, town))[-1] == ("fred", "active", "fragile")
    third = await evaluate(db, town.ctx)
    assert third.changed == 0 and len(await _transitions(db, town)) == 9


async def test_incremental_runs_only_look_at_customers_with_new_events(db, town):
    await evaluate(db, town.ctx)
    await track(db, town.ctx, trips("ivan", 1, days_ago=0.1))
    run = await evaluate(db, town.ctx, mode="incremental")
    assert (run.mode, run.evaluated, run.changed) == ("incremental", 1, 1)
    assert (await _stages(db, town))["ivan"] == "active"
    nothing_new = await evaluate(db, town.ctx, mode="incremental")
    assert (nothing_new.evaluated, nothing_new.changed) == (0, 0)


async def test_tenant_overlay_tunes_thresholds(db, town, client):
    r = await client.put(f"/v1/tenants/{town.ctx.tenant_id}/canvas/overlay",
                         headers=auth(town.key), json={"overrides": {"inactive_days": 10}})
    assert r.status_code == 422
    problem = r.json()
    assert problem["field"] == "overrides.inactive_days"
    assert problem["bounds"] == {"min": 30, "max": 180} and "between 30 and 180" in \
        problem["detail"]
    r = await client.put(f"/v1/tenants/{town.ctx.tenant_id}/canvas/overlay",
                         headers=auth(town.key), json={"overrides": {"fragile_recent_days": 7}})
    assert r.status_code == 422 and "locked" in r.json()["detail"]
    r = await client.put(f"/v1/tenants/{town.ctx.tenant_id}/canvas/overlay",
                         headers=auth(town.key), json={"overrides": {"inactive_days": 120}})
    assert r.status_code == 200, r.text
    assert r.json()["parameters"]["inactive_days"] == 120
    await evaluate(db, town.ctx)
    stages = await _stages(db, town)
    assert stages["ivan"] == "active" and stages["dora"] == "inactive"  # 100 < 120 < 200 days


async def test_stage_changes_reach_the_plugin_hook_in_batches(db, town):
    seen = []

    async def notify(changes):
        seen.extend(changes)

    await evaluate(db, town.ctx, notify=notify)
    assert sorted((c.customer_id, c.previous_stage, c.stage) for c in seen) == sorted(
        (town.ids[who], None, stage) for who, stage in EXPECTED.items())


async def test_segments_can_target_stages_and_summaries_count_them(
        db, client, town, make_tenant, make_key, hq_key):
    await evaluate(db, town.ctx)
    segment = await create_segment(db, town.ctx, SegmentCreate(
        name="at risk", definition=d.StageCondition(["inactive", "lapsed"])))
    assert (await refresh_segment(db, town.ctx, segment.id)).members == 3
    r = await client.get(f"/v1/tenants/{town.ctx.tenant_id}/stages/summary",
                         headers=auth(town.key))
    assert r.status_code == 200, r.text
    body = r.json()
    counts = {s["stage"]: s["count"] for s in body["stages"]}
    assert counts == {"prospect": 1, "lapsed": 1, "inactive": 2, "new": 1, "fragile": 0,
                      "loyal": 1, "active": 2, "unassigned": 0}
    assert body["customers"] == 8 and body["last_run"]["changed"] == 8
    assert [(s["name"], s["members"]) for s in body["segments"] if s["scope"] == "local"] == [
        ("at risk", 3)]
    other = await make_town(db, make_tenant, make_key, "life-hq")  # not evaluated yet
    r = await client.get("/v1/hq/stages/summary", headers=auth(hq_key))
    assert r.status_code == 200
    tenants = {t["tenant_id"]: t for t in r.json()["tenants"]}
    assert {s["stage"]: s["count"] for s in tenants[town.ctx.tenant_id]["stages"]} == counts
    assert {s["stage"]: s["count"] for s in tenants[other.ctx.tenant_id]["stages"]}[
        "unassigned"] == 8
    totals = {s["stage"]: s["count"] for s in r.json()["stages"]}
    assert totals["loyal"] >= 1 and r.json()["customers"] >= 16
    assert "segments" not in tenants[town.ctx.tenant_id]  # HQ sees global ones only
    r = await client.get("/v1/hq/stages/summary", headers=auth(town.key))
    assert r.status_code == 403


async def test_evaluation_is_isolated_per_tenant(db, town, make_tenant):
    other = context_for(await make_tenant("life"), SYSTEM)
    await track(db, other, trips("zed", 2, days_ago=5))
    run = await evaluate(db, other)
    assert run.evaluated == 1
    assert set((await _stages(db, town)).values()) == {None}
    assert (await overlay.effective(db, other, "lifecycle_canvas")).tenant_id == other.tenant_id


async def test_on_demand_evaluation_runs_as_a_job(client, db, town, settings):
    from core.jobs.worker import build_worker

    url = f"/v1/tenants/{town.ctx.tenant_id}/stages"
    first = await client.post(f"{url}/evaluate", headers=auth(town.key), json={})
    again = await client.post(f"{url}/evaluate", headers=auth(town.key), json={})
    assert first.status_code == 202 and first.json()["queued"] is True
    assert again.json()["queued"] is False  # same job until a run starts
    r = await client.post(f"{url}/evaluate", headers=auth(town.key), json={"mode": "sometimes"})
    assert r.status_code == 400 and r.json()["field"] == "mode"
    worker = build_worker(settings, burst=True, poll_delay=0.05)
    try:
        await worker.main()
    finally:
        await worker.close()
    runs = (await client.get(f"{url}/runs", headers=auth(town.key))).json()["items"]
    assert [(r["mode"], r["status"], r["changed"]) for r in runs] == [("full", "done", 8)]
    assert await _stages(db, town) == EXPECTED
