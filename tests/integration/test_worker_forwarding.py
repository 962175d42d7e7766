"""Drop-in delivery: a request signed by GitHub goes through the real edge and worker, and the
application receives the provider's own headers (signature, event, delivery id, user agent) and
query string with the byte-exact body, so it can keep verifying GitHub's signature behind hookq.
Hop-by-hop headers, the ones hookq sets itself and secrets in the query are not forwarded;
per-route allow/deny lists and switches are honoured."""

import edge
import harness
from worker_fixtures import (config_text, event_status, route, wait_until, pg_migrated,  # noqa: F401
                             sink, workers)


def headers_named(req, name):
    return [v for k, v in req.raw if k.lower() == name]


def test_provider_headers_and_query_are_forwarded(redis_server, pg_migrated, sink, workers,
                                                  tmp_path):
    paths = edge.secret_files(str(tmp_path))
    nginx = harness.Nginx(f"""
    hookq_redis {{redis}};
    server {{
        listen 127.0.0.1:{{port}};
        location = /hooks/github {{ hookq github; hookq_secret file:{paths['github']}; }}
        location = /hooks/moysklad {{ hookq moysklad; hookq_secret env:MS_TOKEN;
                                      hookq_accept_status 204; }}
    }}
""", redis_port=redis_server.port, env={"MS_TOKEN": edge.SECRETS["moysklad"]})
    try:
        routes = (route("gh", "github", sink.url("/gh"), 'forward_headers_deny = ["X-Custom-Deny"]')
                  + route("allow", "github", sink.url("/allow"),
                          'forward_headers_allow = ["x-github-event"]')
                  + route("bare", "github", sink.url("/bare"),
                          "forward_headers = false\nforward_query = false")
                  + route("ms", "moysklad", sink.url("/ms?route=1")))
        cfg = config_text(redis_server, pg_migrated, routes)
        workers(cfg)

        body = '{"action":"opened","title":"caf\u00e9 \\u2603","n":1}\n'.encode()
        gh = edge.github_headers(body)
        sent = dict(gh, **{"User-Agent": "GitHub-Hookshot/044aadd", "X-Request-ID": "provider-id",
                           "X-Hookq-Source": "forged", "X-Custom-Deny": "1",
                           "Proxy-Authorization": "Basic eDp5", "Connection": "keep-alive, X-Hop",
                           "X-Hop": "1", "X-Empty": ""})
        status, h, _ = edge.post(nginx.port, "/hooks/github?installation=7&access_token=ghs_1",
                                 body, sent)
        assert status == 202, h
        rid = h["x-request-id"]
        status, h2, _ = edge.post(
            nginx.port, f"/hooks/moysklad?requestId=ms-9&token={edge.SECRETS['moysklad']}&x=%20y",
            b'{"events":[]}', {"Content-Type": "application/json"})
        assert status == 204
        ms_rid = h2["x-request-id"]
        wait_until(lambda: event_status(pg_migrated).get(rid) == "delivered" and
                   event_status(pg_migrated).get(ms_rid) == "delivered", 20, what="delivered")

        [req] = sink.received("/gh?installation=7")
        assert req.body == body
        for name in ("x-hub-signature-256", "x-github-event", "x-github-delivery", "user-agent"):
            assert headers_named(req, name) == [sent[next(k for k in sent if k.lower() == name)]]
        want_sig = "sha256=" + edge.hmac_hex(edge.SECRETS["github"], req.body)
        assert headers_named(req, "x-hub-signature-256") == [want_sig]
        # hookq's own headers win, once each; the provider's copies are not forwarded.
        assert headers_named(req, "x-request-id") == [rid]
        assert headers_named(req, "x-hookq-source") == ["github"]
        assert headers_named(req, "host") == [f"127.0.0.1:{sink.port}"]
        assert headers_named(req, "content-length") == [str(len(body))]
        assert headers_named(req, "content-type") == ["application/json"]
        assert len(headers_named(req, "webhook-signature")) == 1
        assert headers_named(req, "x-empty") == [""]
        for name in ("x-custom-deny", "proxy-authorization", "x-hop", "accept-encoding"):
            assert headers_named(req, name) == [], name
        assert len(headers_named(req, "connection")) <= 1

        [allow] = sink.received("/allow?installation=7")
        assert headers_named(allow, "x-github-event") == ["push"]
        assert headers_named(allow, "x-hub-signature-256") == []
        assert headers_named(allow, "x-request-id") == [rid]

        [bare] = sink.received("/bare")
        assert headers_named(bare, "x-github-event") == []
        assert headers_named(bare, "user-agent") == ["hookq-worker/0.1"]

        # The edge stored MoySklad's token as [redacted]; it is dropped, not forwarded.
        [ms] = sink.received("/ms?route=1&requestId=ms-9&x=%20y")
        assert ms.body == b'{"events":[]}'
        assert headers_named(ms, "x-request-id") == [ms_rid]
    finally:
        nginx.close()
