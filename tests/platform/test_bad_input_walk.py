"""Malformed input on every route of the OpenAPI schema: always a 4xx problem, never a 500.

Like the cross-tenant walk, this reads the live schema, so new routes are covered without
touching this file. Each operation with a JSON body gets broken JSON, a JSON value of the
wrong shape, an unknown field, every top-level property set to a value of the wrong type
and every string property holding a NUL character; each query parameter gets a value of
the wrong type (a NUL for strings), and the last path parameter a NUL.
"""

from __future__ import annotations

import re

import tests.crosstenant as registry
from tenants.context import HqContext
from tenants.service import context_for
from tests.conftest import auth

_PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
_WRONG = {"string": 12345, "integer": "not-a-number", "number": "not-a-number",
          "boolean": "not-a-boolean", "array": "not-an-array", "object": "not-an-object"}


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_schema(operation: dict, spec: dict) -> dict | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return _resolve(content["application/json"].get("schema", {}), spec)


def _type_of(prop: dict, spec: dict) -> str | None:
    prop = _resolve(prop, spec)
    if "type" in prop and isinstance(prop["type"], str):
        return prop["type"]
    for option in prop.get("oneOf", prop.get("anyOf", [])):
        option = _resolve(option, spec)
        if option.get("type") not in (None, "null"):
            return None  # unions accept several types: skip rather than guess
    return None


def _bad_bodies(schema: dict, spec: dict) -> list[tuple[str, bytes | object]]:
    cases: list[tuple[str, bytes | object]] = [("broken json", b'{"oops": '),
                                               ("wrong shape", [1, 2, 3])]
    if schema.get("type") == "object":
        cases.append(("unknown field", {"surely_not_a_field": 1}))
        for name, prop in schema.get("properties", {}).items():
            kind = _type_of(prop, spec)
            if kind in _WRONG:
                cases.append((f"{name} wrong type", {name: _WRONG[kind]}))
            if kind == "string":  # PostgreSQL text cannot hold NUL (api/nul.py)
                cases.append((f"{name} with NUL", {name: "nul\x00here"}))
    return cases


async def test_every_route_answers_bad_input_with_a_4xx_problem(
        client, db, hq_key, make_tenant, make_key):
    tenant = await make_tenant("bad")
    key = await make_key(tenant.id)
    world = registry.World(db=db, ctx=context_for(tenant, HqContext().actor),
                           admin_key=key, client=client)
    spec = (await client.get("/schema/openapi.json")).json()
    cache: dict[str, str] = {}
    failures, checked = [], 0
    for path, item in sorted(spec["paths"].items()):
        if not path.startswith("/v1/"):
            continue
        headers = auth(key if path.startswith("/v1/tenants/") else hq_key)
        values = {"tenant": tenant.id}
        for name in _PARAM.findall(path):
            if name != "tenant" and name not in cache:
                factory = registry.FACTORIES.get(name)
                if factory is None:
                    continue  # the cross-tenant walk reports missing factories
                cache[name] = await factory(world)
            values[name] = cache.get(name, "unknown")
        url = _PARAM.sub(lambda m: values.get(m.group(1), "x"), path)  # noqa: B023
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            cases: list[tuple[str, dict]] = []
            schema = _body_schema(operation, spec)
            if schema is not None:
                for label, body in _bad_bodies(schema, spec):
                    kw = ({"content": body, "headers": headers | {
                        "content-type": "application/json"}} if isinstance(body, bytes)
                          else {"json": body, "headers": headers})
                    cases.append((label, kw))
            for param in operation.get("parameters", []):
                kind = _type_of(param.get("schema", {}), spec)
                if param["in"] == "query" and kind in ("integer", "number", "boolean"):
                    cases.append((f"query {param['name']}", {
                        "params": {param["name"]: _WRONG[kind]}, "headers": headers}))
                if param["in"] == "query" and kind == "string":
                    cases.append((f"query {param['name']} with NUL", {
                        "params": {param["name"]: "nul\x00here"}, "headers": headers}))
            names = [n for n in _PARAM.findall(path) if n != "tenant"]
            if names:  # the last path parameter holding a NUL (%00)
                holed = dict(values, **{names[-1]: "nul%00here"})
                cases.append(("path with NUL", {"headers": headers, "url": _PARAM.sub(
                    lambda m, v=holed: v.get(m.group(1), "x"), path)}))
            for label, kw in cases:
                checked += 1
                target = kw.pop("url", url)
                r = await client.request(method.upper(), target, **kw)
                problem = (r.headers.get("content-type") == "application/problem+json")
                named = r.status_code not in (400, 422) or bool(r.json().get("field"))
                if not (400 <= r.status_code < 500 and problem and named):
                    failures.append((method, path, label, r.status_code, r.text[:200]))
    assert checked > 100
    for failure in failures:
        print(failure)
    assert failures == []
