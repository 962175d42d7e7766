"""Routing on several body fields at once (MoySklad's action, entity type and account, through its
events[] array): each webhook reaches exactly the routes whose conditions it meets."""

import json

import envelope
from worker_fixtures import (config_text, event_status, route, rows, wait_until,  # noqa: F401
                             pg_migrated, sink, workers)

Q = "moysklad"


def batch(*events):
    return json.dumps({"events": [
        {"meta": {"type": t, "href": f"https://api.moysklad.ru/{t}/{i}"}, "action": a,
         "accountId": acc} for i, (t, a, acc) in enumerate(events)]}).encode()


def test_routes_by_type_action_and_account(redis_server, pg_migrated, sink, workers):
    routes = (route("products", Q, sink.url("/products"),
                    'match = { "events[].meta.type" = "product", '
                    '"events[].action" = ["CREATE", "UPDATE"] }')
              + route("acc2-orders", Q, sink.url("/acc2"),
                      'match = { "events[].meta.type" = "customerorder", '
                      '"events[].accountId" = "acc-2" }'))
    workers(config_text(redis_server, pg_migrated, routes))
    r = redis_server.client()
    bodies = {
        "product-update": batch(("product", "UPDATE", "acc-1")),
        "product-delete": batch(("product", "DELETE", "acc-1")),
        "acc2-order": batch(("customerorder", "CREATE", "acc-2")),
        "both": batch(("customerorder", "UPDATE", "acc-2"), ("product", "CREATE", "acc-2")),
    }
    ids = {}
    for name, body in bodies.items():
        rid, env = envelope.make(Q, body=body)
        ids[name] = rid
        r.lpush(f"hookq:{{{Q}}}:queue", env)
    wait_until(lambda: all(event_status(pg_migrated).get(rid) in ("delivered", "dead")
                           for rid in ids.values()), 20, what="all settled")
    assert sink.ids("/products") == {ids["product-update"], ids["both"]}
    assert sink.ids("/acc2") == {ids["acc2-order"], ids["both"]}
    # Matching no route is a dead letter that says so, as for an unknown event type.
    [(status,)] = rows(pg_migrated, "SELECT status FROM webhook_events WHERE id = %s",
                       ids["product-delete"])
    assert status == "dead"
