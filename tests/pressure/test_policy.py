"""The pressure policy overlay kind: HQ declarations, tenant overlays within bounds,
resolution, and the API around it."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.pressure import service
from core.pressure.policy import KIND, builtin, check_definition, resolve
from core.pressure.schemas import CapRuleDefinition, ParamRef, PressurePolicyDefinition
from tenants.governance import Parameter
from tenants.overlay import compose, load_version
from tests.conftest import auth
from tests.pressure.factories import ensure_current, rule, use_policy


def _policy(**params: Parameter) -> dict[str, Parameter]:
    return params


def test_builtin_policy_is_valid_and_resolves():
    version = builtin()
    check_definition(version.definition, version.parameters)


@pytest.mark.parametrize(("definition", "params", "field"), [
    (PressurePolicyDefinition(rules=[rule(f"r{i}", 1) for i in range(11)]), {},
     "definition.rules"),
    (PressurePolicyDefinition(rules=[rule("a", 1), rule("a", 2)]), {},
     "definition.rules[1].id"),
    (PressurePolicyDefinition(rules=[rule("Bad Id", 1)]), {}, "definition.rules[0].id"),
    (PressurePolicyDefinition(rules=[rule("a", 1, "rolling")]), {},
     "definition.rules[0].days"),
    (PressurePolicyDefinition(rules=[rule("a", 1, "week", days=3)]), {},
     "definition.rules[0].days"),
    (PressurePolicyDefinition(rules=[rule("a", 1, categories=["transactional"])]), {},
     "definition.rules[0].categories"),
    (PressurePolicyDefinition(rules=[rule("a", ParamRef("cap"))]), {},
     "definition.rules[0].max"),
    # an unbounded tenant-overridable cap could be set to -1
    (PressurePolicyDefinition(rules=[rule("a", ParamRef("cap"))]),
     {"cap": Parameter(default=3, mode="overridable")}, "definition.rules[0].max"),
    (PressurePolicyDefinition(rules=[rule("a", ParamRef("cap"))]),
     {"cap": Parameter(default=3, mode="bounded", min=-1, max=4)}, "definition.rules[0].max"),
    (PressurePolicyDefinition(quiet_start=ParamRef("qs")),
     {"qs": Parameter(default=1260, mode="bounded", min=0, max=2000)},
     "definition.quiet_start"),
    (PressurePolicyDefinition(quiet_end=1500), {}, "definition.quiet_end"),
    (PressurePolicyDefinition(quiet_hours_action=ParamRef("act")),
     {"act": Parameter(default="delay", mode="overridable")}, "definition.quiet_hours_action"),
    (PressurePolicyDefinition(campaign_exemption_allowed=ParamRef("ex")),
     {"ex": Parameter(default=1)}, "definition.campaign_exemption_allowed"),
    (PressurePolicyDefinition(rules=[rule("a", 1, channel="SMS!")]), {},
     "definition.rules[0].channel"),
])
def test_invalid_definitions_name_the_field(definition, params, field):
    with pytest.raises(InvalidInput) as err:
        check_definition(definition, params)
    assert err.value.field == field


def test_resolution_applies_overrides_within_bounds_and_skips_disabled_rules():
    version = builtin()
    import msgspec

    from tenants.overlay import GlobalVersion
    gv = GlobalVersion(kind=KIND, version=0, definition=msgspec.to_builtins(version.definition),
                       parameters=version.parameters, notes="", created_at=None,
                       created_by="x")
    eff = compose(gv, "t", {"weekly_marketing_max": 2, "daily_max": 9, "quiet_start": 1320})
    policy = resolve(eff)
    rules = {r.id: r for r in policy.rules}
    assert rules["weekly_marketing"].max == 2
    assert rules["daily_any"].max == 1  # 9 is out of HQ bounds: ignored, HQ value kept
    assert [i.parameter for i in eff.ignored] == ["daily_max"]
    assert policy.quiet_start == 1320 and policy.quiet_end == 480
    assert policy.alert_bypass_quiet_hours and not policy.campaign_exemption_allowed

    definition = PressurePolicyDefinition(rules=[
        CapRuleDefinition(id="opt", max=1, window="day", enabled=ParamRef("opt_on"))])
    params = {"opt_on": Parameter(default=False, mode="overridable")}
    check_definition(definition, params)
    gv = GlobalVersion(kind=KIND, version=5, definition=msgspec.to_builtins(definition),
                       parameters=params, notes="", created_at=None, created_by="x")
    assert resolve(compose(gv, "t", {})).rules == ()
    assert [r.id for r in resolve(compose(gv, "t", {"opt_on": True})).rules] == ["opt"]


async def test_policy_api_overlay_and_governance(client, db, make_tenant, make_key, hq_key):
    tenant = await make_tenant("press")
    key = await make_key(tenant.id)
    base = f"/v1/tenants/{tenant.id}/pressure"
    await ensure_current(db)
    r = await client.get(f"{base}/effective", headers=auth(key))
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == KIND
    # within bounds
    r = await client.put(f"{base}/overlay", headers=auth(key),
                         json={"overrides": {"weekly_marketing_max": 2}})
    assert r.status_code == 200, r.text
    r = await client.get(f"{base}/policy", headers=auth(key))
    assert {x["id"]: x["max"] for x in r.json()["rules"]}["weekly_marketing"] == 2
    # out of bounds, and locked
    r = await client.put(f"{base}/overlay", headers=auth(key),
                         json={"overrides": {"weekly_marketing_max": 7}})
    assert r.status_code == 422 and r.json()["field"] == "overrides.weekly_marketing_max"
    r = await client.put(f"{base}/overlay", headers=auth(key),
                         json={"overrides": {"campaign_exemption_allowed": True}})
    assert r.status_code == 422 and r.json()["field"] == "overrides.campaign_exemption_allowed"
    # HQ publishing an invalid version names the field
    r = await client.post("/v1/hq/pressure/versions", headers=auth(hq_key), json={
        "definition": {"rules": [{"id": "x", "max": {"param": "cap"}, "window": "day"}]},
        "parameters": {"cap": {"default": 2, "mode": "overridable"}}})
    assert r.status_code == 422 and r.json()["field"] == "definition.rules[0].max"
    # a tenant key cannot publish
    r = await client.post("/v1/hq/pressure/versions", headers=auth(key), json={
        "definition": {"rules": []}})
    assert r.status_code == 403


async def test_piloted_version_applies_to_one_tenant_only(db, make_tenant):
    a, b = await make_tenant("pilot-a"), await make_tenant("pilot-b")
    version = await use_policy(db, a.id, [rule("only", 1, "rolling", days=3, channel="sms")])
    async with db.hq_tx() as conn:
        assert (await load_version(conn, KIND, version)).version == version
    from tenants.context import SYSTEM
    from tenants.service import context_for
    pa = await service.get_policy(db, context_for(a, SYSTEM))
    pb = await service.get_policy(db, context_for(b, SYSTEM))
    assert [r.id for r in pa.rules] == ["only"] and pa.version == version
    assert {r.id for r in pb.rules} == {"weekly_marketing", "daily_any", "sms_monthly"}
