-- hookq schema v2: per-route state.
--
-- webhook_events.status used to be written from the claim that finished last, so with two routes
-- "delivered" could mean "the other route is still retrying". webhook_routes keeps one narrow row
-- per webhook and route; the worker writes it in the same transaction as the event and derives
-- webhook_events.status from all of a webhook's routes: delivered only when every route delivered,
-- dead when some route is dead and none is still pending, retrying or parked otherwise.
--
-- Partitioned like webhook_events, on the same received_at, so retention drops both together.

CREATE TABLE webhook_routes (
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL,
    route       text        NOT NULL,
    status      text        NOT NULL
                CHECK (status IN ('delivered', 'retrying', 'parked', 'dead')),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (received_at, event_id, route)
) PARTITION BY RANGE (received_at);
-- What is still pending, per route and over time (the operations queries); delivered rows, the
-- vast majority, stay out of it.
CREATE INDEX webhook_routes_pending_idx ON webhook_routes (route, status, received_at)
    WHERE status <> 'delivered';
CREATE TABLE webhook_routes_default PARTITION OF webhook_routes DEFAULT;

CREATE OR REPLACE FUNCTION hookq_ensure_partitions(months_ahead integer DEFAULT 2) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m     timestamp;
    tbl   text;
    part  text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i);
        FOREACH tbl IN ARRAY ARRAY['webhook_events', 'delivery_attempts', 'webhook_routes'] LOOP
            part := format('%s_%s', tbl, to_char(m, 'YYYYMM'));
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   part, tbl, (m AT TIME ZONE 'UTC'),
                                   ((m + interval '1 month') AT TIME ZONE 'UTC'));
                EXCEPTION WHEN others THEN
                    RAISE WARNING 'hookq: cannot create partition %: %', part, SQLERRM;
                END;
            END IF;
        END LOOP;
    END LOOP;
END $$;

SELECT hookq_ensure_partitions(2);

-- Webhooks still pending at the upgrade: their routes' last known state, from the attempts, so
-- that the next retry of one route does not declare the whole webhook delivered.
INSERT INTO webhook_routes (event_id, received_at, route, status, attempts, last_error)
SELECT DISTINCT ON (e.id, a.route) e.id, e.received_at, a.route,
       CASE a.outcome WHEN 'retry' THEN 'retrying' WHEN 'delivered' THEN 'delivered'
                      WHEN 'parked' THEN 'parked' ELSE 'dead' END,
       a.attempt, a.error
FROM webhook_events e JOIN delivery_attempts a ON a.event_id = e.id
WHERE e.status IN ('retrying', 'parked')
ORDER BY e.id, a.route, a.started_at DESC, a.attempt DESC
ON CONFLICT DO NOTHING;
