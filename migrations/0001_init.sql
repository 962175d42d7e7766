-- hookq schema v1. Applied by `hookqctl migrate` inside one transaction under an advisory lock.
--
-- webhook_events and delivery_attempts are partitioned by month on their time column, so that
-- retention is DROP of a partition rather than a DELETE that bloats the table. PostgreSQL requires
-- the partition key in every unique constraint of a partitioned table, hence the primary key
-- (received_at, id) rather than (id): the worker always writes an event with the received_at taken
-- from its envelope, so (received_at, id) identifies a webhook exactly as id does, and the upsert
-- after a redelivery finds the row. id alone stays indexed for lookups.

CREATE TABLE webhook_events (
    id           uuid        NOT NULL,
    received_at  timestamptz NOT NULL,
    source       text        NOT NULL,
    dedup_key    text        NOT NULL DEFAULT '',
    event_type   text,
    method       text        NOT NULL DEFAULT 'POST',
    path         text        NOT NULL DEFAULT '',
    remote_addr  text,
    headers      jsonb       NOT NULL DEFAULT '{}',
    body         bytea       NOT NULL,
    status       text        NOT NULL
                 CHECK (status IN ('queued', 'delivered', 'retrying', 'parked', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0,
    delivered_at timestamptz,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (received_at, id)
) PARTITION BY RANGE (received_at);
CREATE INDEX webhook_events_id_idx ON webhook_events (id);
CREATE INDEX webhook_events_source_idx ON webhook_events (source, received_at);
CREATE INDEX webhook_events_pending_idx ON webhook_events (status, received_at)
    WHERE status <> 'delivered';

CREATE TABLE delivery_attempts (
    event_id    uuid             NOT NULL,
    route       text             NOT NULL,
    url         text             NOT NULL,
    attempt     integer          NOT NULL,
    started_at  timestamptz      NOT NULL,
    duration_ms double precision NOT NULL,
    http_status integer,
    outcome     text             NOT NULL,
    error       text,
    worker_id   text
) PARTITION BY RANGE (started_at);
CREATE INDEX delivery_attempts_event_idx ON delivery_attempts (event_id);
-- BRIN: started_at grows with insertion order, so a tiny index serves time-range scans.
CREATE INDEX delivery_attempts_started_idx ON delivery_attempts USING brin (started_at);

-- Small by nature (only failures), not partitioned; one row per webhook and route.
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,
    route       text        NOT NULL,
    reason      text        NOT NULL,
    attempts    integer     NOT NULL,
    failed_at   timestamptz NOT NULL,
    requeued_at timestamptz,
    UNIQUE (event_id, route)
);
CREATE INDEX dead_letters_failed_idx ON dead_letters (failed_at);

-- A destination answered 410 Gone: the route is flagged for an operator to look at.
CREATE TABLE route_flags (
    route      text        PRIMARY KEY,
    reason     text        NOT NULL,
    event_id   uuid,
    flagged_at timestamptz NOT NULL,
    cleared_at timestamptz
);

CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text,
    details     jsonb       NOT NULL DEFAULT '{}',
    remote_addr text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE breaker_transitions (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,
    destination text        NOT NULL,
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    worker_id   text,
    reason      text
);
CREATE INDEX breaker_transitions_dest_idx ON breaker_transitions (destination, at);

-- Monthly partitions from the current month up to `months_ahead` months ahead (UTC). The worker
-- and hookqctl call it at start and daily. It never fails its caller: a concurrent creation by
-- another worker, or rows already sitting in the DEFAULT partition for that range, only warn.
CREATE FUNCTION hookq_ensure_partitions(months_ahead integer DEFAULT 2) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m     timestamp;
    tbl   text;
    part  text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        m := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i);
        FOREACH tbl IN ARRAY ARRAY['webhook_events', 'delivery_attempts'] LOOP
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

-- The safety net: a row whose month has no partition yet (clock skew, a worker that never ran at
-- the turn of the month) lands here instead of failing the insert and stalling the queue.
CREATE TABLE webhook_events_default PARTITION OF webhook_events DEFAULT;
CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;

SELECT hookq_ensure_partitions(2);
