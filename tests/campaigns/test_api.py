"""The campaign API end to end: bad input named by field, lifecycle through the real arq
worker, progress, funnel, recipients, simulation, cancellation, HQ packages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.campaigns import lifecycle
from core.jobs.worker import build_worker
from core.segments import definition as d
from core.segments.hq import archive_global, create_global
from core.segments.schemas import SegmentCreate
from tenants.context import HqContext
from tests.campaigns.factories import add_customers, campaign_body, make_shop, messages
from tests.conftest import auth

HQ = HqContext()


def _body(shop, **overrides):
    import msgspec
    return msgspec.to_builtins(campaign_body(shop, **overrides))


async def _run_worker(settings) -> None:
    worker = build_worker(settings, burst=True, poll_delay=0.05, cron_jobs=[])
    try:
        await worker.main()
        assert worker.jobs_failed == 0
    finally:
        await worker.close()


async def test_bad_input_names_the_field(client, db, make_tenant, make_key):
    shop = await make_shop(db, make_tenant, "capi")
    key = await make_key(shop.ctx.tenant_id)
    url = f"/v1/tenants/{shop.ctx.tenant_id}/campaigns"
    cases = [
        (_body(shop, templates={"email": shop.templates["email"]}), "templates.sms"),
        (_body(shop, segment_id="seg_doesnotexist0"), "segment_id"),
        (_body(shop, schedule={"kind": "at"}), "schedule.at"),
        (_body(shop, schedule={"kind": "local_time", "date": "2030-01-01"}), "schedule.time"),
        (_body(shop, variants=[{"name": "A", "split": 60}, {"name": "B", "split": 30}]),
         "variants"),
        (_body(shop, bypass_quiet_hours=True), "bypass_quiet_hours"),
        (_body(shop, pressure_exempt=True), "pressure_exempt"),
        (_body(shop, channels=["email"], templates={"email": shop.templates["sms"]}),
         "templates.email"),
        (_body(shop, channels=["email"], templates={"email": "nope"}), "templates.email"),
        (_body(shop, channels=["email", "email"]), "channels"),
    ]
    for body, field in cases:
        r = await client.post(url, headers=auth(key), json=body)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == field, r.json()
    for body, status in [({**_body(shop), "priority": 101}, 400), ({"name": "x"}, 400),
                         ({**_body(shop), "surprise": 1}, 400)]:
        r = await client.post(url, headers=auth(key), json=body)
        assert r.status_code == status, r.text
    r = await client.get(f"{url}/not-a-uuid", headers=auth(key))
    assert r.status_code == 404
    r = await client.get(f"{url}?status=bogus", headers=auth(key))
    assert r.status_code == 400


async def test_lifecycle_through_the_worker(client, db, settings, make_tenant, make_key):
    shop = await make_shop(db, make_tenant, "capi")
    ids = await add_customers(shop, 30)
    await add_customers(shop, 5, consents={})
    key = await make_key(shop.ctx.tenant_id)
    url = f"/v1/tenants/{shop.ctx.tenant_id}/campaigns"
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    r = await client.post(url, headers=auth(key), json=_body(
        shop, schedule={"kind": "at", "at": soon.isoformat()}))
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert campaign["status"] == "draft" and campaign.get("progress") is None
    cid = campaign["id"]

    r = await client.patch(f"{url}/{cid}", headers=auth(key), json={"priority": 70})
    assert r.status_code == 200 and r.json()["priority"] == 70
    r = await client.patch(f"{url}/{cid}", headers=auth(key), json={"channels": ["push"]})
    assert r.status_code == 422 and r.json()["field"] == "templates.push"

    r = await client.post(f"{url}/{cid}/simulate", headers=auth(key))
    assert r.status_code == 200, r.text
    simulated = r.json()
    assert simulated["simulated"] and simulated["audience"] == 35
    assert simulated["planned"] == 30 and await messages(shop, source_id=cid) == []

    r = await client.post(f"{url}/{cid}/schedule", headers=auth(key))
    assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
    r = await client.patch(f"{url}/{cid}", headers=auth(key), json={"priority": 10})
    assert r.status_code == 409
    r = await client.post(f"{url}/{cid}/schedule", headers=auth(key))
    assert r.status_code == 409

    await _run_worker(settings)  # plan_campaign, then its batch jobs
    r = await client.get(f"{url}/{cid}", headers=auth(key))
    body = r.json()
    assert body["status"] == "running" and body["planned_at"] is not None
    assert body["progress"] == {"audience": 35, "batches_total": 1, "batches_done": 1,
                                "planned": 30, "excluded": 5, "percent": 100.0}
    r = await client.get(f"{url}/{cid}/funnel", headers=auth(key))
    funnel = r.json()
    assert funnel["planned"] == 30 and not funnel["simulated"]
    assert funnel["steps"][2] == {"step": "consent", "entered": 35, "excluded": 5,
                                  "remaining": 30,
                                  "reasons": [{"reason": "consent_missing", "count": 5}]}
    assert funnel["planned"] == simulated["planned"]
    assert len(await messages(shop, source_id=cid)) == 30

    # recipients: filtered, paginated, one by one
    r = await client.get(f"{url}/{cid}/recipients?step=consent&limit=2", headers=auth(key))
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert {i["reason"] for i in page["items"]} == {"consent_missing"}
    r = await client.get(f"{url}/{cid}/recipients?step=consent&limit=2&cursor="
                         f"{page['next_cursor']}", headers=auth(key))
    assert len(r.json()["items"]) == 2
    r = await client.get(f"{url}/{cid}/recipients?step=nope", headers=auth(key))
    assert r.status_code == 422 and r.json()["field"] == "step"
    r = await client.get(f"{url}/{cid}/recipients/{ids[0]}", headers=auth(key))
    one = r.json()
    assert one["step"] == "planned" and one["channel"] == "email" and one["message_id"]

    r = await client.get(f"{url}?status=running", headers=auth(key))
    assert [c["id"] for c in r.json()["items"]] == [cid]

    r = await client.post(f"{url}/{cid}/cancel", headers=auth(key))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert {m["status"] for m in await messages(shop, source_id=cid)} == {"skipped"}
    r = await client.post(f"{url}/{cid}/cancel", headers=auth(key))
    assert r.status_code == 409
    r = await client.get(f"/v1/tenants/{shop.ctx.tenant_id}/audit?limit=20", headers=auth(key))
    actions = {e["action"] for e in r.json()["items"]}
    assert {"campaign.created", "campaign.updated", "campaign.scheduled", "campaign.started",
            "campaign.planned", "campaign.cancelled"} <= actions


async def test_far_schedule_waits_for_the_tick_and_completes(db, settings, make_tenant,
                                                             redis):
    shop = await make_shop(db, make_tenant, "tick")
    await add_customers(shop, 4)
    later = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0,
                                                           microsecond=0)
    from core.campaigns import service
    campaign = await service.create_campaign(db, shop.ctx, campaign_body(
        shop, schedule={"kind": "at", "at": later.isoformat()}))
    from arq import create_pool
    from arq.connections import RedisSettings
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        campaign = await lifecycle.schedule(db, pool, settings, shop.ctx, campaign.id)
        assert campaign.status == "scheduled"
        await _run_worker(settings)  # nothing due yet
        assert (await service.get_campaign(db, shop.ctx, campaign.id)).status == "scheduled"
        counts = await lifecycle.tick(db, pool, settings, shop.ctx,
                                      now=later - timedelta(hours=12))
        assert counts["started"] == 1
        await _run_worker(settings)
        running = await service.get_campaign(db, shop.ctx, campaign.id)
        assert running.status == "running" and running.progress.planned == 4
        counts = await lifecycle.tick(db, pool, settings, shop.ctx,
                                      now=later + timedelta(minutes=1))
        assert counts["completed"] == 1
        done = await service.get_campaign(db, shop.ctx, campaign.id)
        assert done.status == "completed" and done.completed_at is not None
    finally:
        await pool.aclose()


async def test_hq_package_adopted_and_adapted(client, db, make_tenant, make_key, hq_key):
    shop = await make_shop(db, make_tenant, "pkg")
    await add_customers(shop, 3)
    key = await make_key(shop.ctx.tenant_id)
    gseg = await create_global(db, HQ, SegmentCreate(name="pkg everyone " + shop.ctx.tenant_id,
                                                     definition=d.Everyone()))
    try:
        await _package_flow(client, shop, key, hq_key, gseg)
    finally:  # global segments are seen by every tenant of the session
        await archive_global(db, HQ, gseg.id)


async def _package_flow(client, shop, key, hq_key, gseg) -> None:
    package = {"id": f"pkg-{shop.ctx.tenant_id}", "description": "summer offer",
               "locked": ["channels", "priority"],
               "campaign": _body(shop, segment_id=gseg.id, name="Summer offer",
                                 priority=35)}
    r = await client.post("/v1/hq/campaign-packages", headers=auth(hq_key), json=package)
    assert r.status_code == 201, r.text
    r = await client.post("/v1/hq/campaign-packages", headers=auth(hq_key), json=package)
    assert r.status_code == 409
    r = await client.post("/v1/hq/campaign-packages", headers=auth(key), json=package)
    assert r.status_code == 403
    r = await client.post("/v1/hq/campaign-packages", headers=auth(hq_key), json={
        **package, "id": "pkg-bad", "campaign": _body(shop, segment_id=shop.segment_id)})
    assert r.status_code == 422 and r.json()["field"] == "campaign.segment_id"

    base = f"/v1/tenants/{shop.ctx.tenant_id}"
    r = await client.get(f"{base}/campaign-packages", headers=auth(key))
    assert package["id"] in [p["id"] for p in r.json()["items"]]
    r = await client.post(f"{base}/campaigns/adopt", headers=auth(key),
                          json={"package_id": package["id"], "priority": 90})
    assert r.status_code == 422 and r.json()["field"] == "priority"
    r = await client.post(f"{base}/campaigns/adopt", headers=auth(key),
                          json={"package_id": package["id"], "category": "alert"})
    assert r.status_code == 400  # not even a field tenants may send
    r = await client.post(f"{base}/campaigns/adopt", headers=auth(key), json={
        "package_id": package["id"], "name": "Offre d'été Lyon",
        "schedule": {"kind": "local_time", "date": "2030-06-21", "time": "10:00"}})
    assert r.status_code == 201, r.text
    adopted = r.json()
    assert adopted["package_id"] == package["id"] and adopted["package_revision"] == 1
    assert adopted["priority"] == 35 and adopted["segment_id"] == gseg.id
    assert adopted["schedule"]["kind"] == "local_time"
    r = await client.patch(f"{base}/campaigns/{adopted['id']}", headers=auth(key),
                           json={"priority": 99})
    assert r.status_code == 422 and r.json()["field"] == "priority"
    r = await client.patch(f"{base}/campaigns/{adopted['id']}", headers=auth(key),
                           json={"name": "Offre d'été"})
    assert r.status_code == 200
    # the global segment is evaluated for this tenant when simulated
    r = await client.post(f"{base}/campaigns/{adopted['id']}/simulate", headers=auth(key))
    assert r.status_code == 200 and r.json()["audience"] == 3, r.text

    r = await client.patch(f"/v1/hq/campaign-packages/{package['id']}", headers=auth(hq_key),
                           json={"status": "archived"})
    assert r.status_code == 200 and r.json()["revision"] == 2
    r = await client.post(f"{base}/campaigns/adopt", headers=auth(key),
                          json={"package_id": package["id"]})
    assert r.status_code == 422 and r.json()["field"] == "package_id"


async def test_pressure_routes(client, db, make_tenant, make_key):
    shop = await make_shop(db, make_tenant, "papi")
    ids = await add_customers(shop, 1, timezone="America/New_York")
    key = await make_key(shop.ctx.tenant_id)
    base = f"/v1/tenants/{shop.ctx.tenant_id}/pressure"
    from tests.campaigns.factories import add_history
    await add_history(shop, [{"customer_id": ids[0], "at": datetime(2030, 3, 4, 15,
                                                                    tzinfo=UTC)}])
    r = await client.get(f"{base}/customers/{ids[0]}?at=2030-03-04T16:00:00Z",
                         headers=auth(key))
    assert r.status_code == 200, r.text
    usage = {u["rule"]: u for u in r.json()["rules"]}
    assert r.json()["timezone"] == "America/New_York"
    assert usage["daily_any"]["counted"] == 1 and usage["daily_any"]["remaining"] == 0
    assert usage["daily_any"]["window_start"] == "2030-03-04T05:00:00+00:00"
    assert usage["sms_monthly"]["counted"] == 0
    r = await client.get(f"{base}/customers/{ids[0]}?at=2030-03-04T16:00:00",
                         headers=auth(key))
    assert r.status_code == 422 and r.json()["field"] == "at"
    r = await client.get(f"{base}/audit", headers=auth(key))
    assert r.status_code == 200 and r.json() == {"rules_checked": 3, "violations": []}
    r = await client.get(f"{base}/policy", headers=auth(key))
    assert r.json()["quiet_start"] == 1260
