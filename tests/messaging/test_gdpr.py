"""Erasure reaches the contact history: the rows stay (pressure and KPIs keep counting),
the address and personal data rendered into them do not."""

from __future__ import annotations

from tests.templates.factories import hq_template


async def test_export_lists_messages_and_erase_anonymises_them(env, sink, db):
    await env.enable_email(sink)
    template_id = await hq_template(db, pilots=[env.tenant.id], category="alert",
                                    purpose="traffic_info", contents={"fr-FR": {
                                        "subject": "Info {{ event.line }}",
                                        "text": "Ligne {{ event.line }}"}})
    customer = await env.customer(first_name="Zoé", email="zoe.martin@reseau-lyon.fr",
                                  consents=(("email", "traffic_info"),))
    sent = await env.send(template_id, customer, data={"line": "T2"})
    assert (await env.dispatch("email")).sent == 1

    export = (await env.client.post(f"{env.base}/customers/{customer}/export",
                                    headers=env.headers)).json()
    assert [m["id"] for m in export["messages"]] == [sent["id"]]
    assert export["messages"][0]["to_address"] == "zoe.martin@reseau-lyon.fr"

    r = await env.client.post(f"{env.base}/customers/{customer}/erase", headers=env.headers)
    assert r.status_code == 200, r.text
    async with db.tenant_tx(env.ctx) as conn:
        row = await conn.fetchrow("select status, to_address, data from messages where id = $1",
                                  sent["id"])
    assert row["status"] == "sent" and row["to_address"] is None and row["data"] == {}
