-- hookq schema v5: retention by whole partitions, the audit log partitioned, and partitions that
-- never wait behind a long query.
--
-- Retention drops monthly partitions (a catalog change and a file unlink) instead of DELETE, which
-- would bloat the large tables and take as long as the rows it removes. audit_log grows forever
-- too, so it becomes partitioned by month on `at` like the others.
--
-- hookq_ensure_partitions, rewritten:
-- * lock_timeout: creating a partition needs a lock on the parent. Queued behind a long report
--   query it would hold up every insert that arrives after it, so it gives up after 2 s and the
--   next hourly run tries again (the DEFAULT partition takes the rows meanwhile).
-- * Rows in the DEFAULT partition for a month that has no partition (a worker that did not run at
--   the turn of the month, clock skew) used to make that month's partition impossible to create:
--   PostgreSQL refuses a partition whose range matches rows in DEFAULT. Now such a month is built
--   as a plain table, the rows are moved into it, and it is attached; months in the past included.

CREATE OR REPLACE FUNCTION hookq_partition_month(tbl text, col text, m timestamp) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part   text := format('%s_%s', tbl, to_char(m, 'YYYYMM'));
    lo     timestamptz := m AT TIME ZONE 'UTC';
    hi     timestamptz := (m + interval '1 month') AT TIME ZONE 'UTC';
    strays bigint;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I WHERE %I >= $1 AND %I < $2',
                   tbl || '_default', col, col) INTO strays USING lo, hi;
    IF strays = 0 THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       part, tbl, lo, hi);
        RETURN;
    END IF;
    -- The parent's indexes are built on the new table when it is attached.
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, tbl);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', tbl || '_default', col, col, part)
        USING lo, hi;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   tbl, part, lo, hi);
    RAISE NOTICE 'hookq: % rows moved from %_default into %', strays, tbl, part;
END $$;

CREATE OR REPLACE FUNCTION hookq_ensure_partitions(months_ahead integer DEFAULT 2) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t      record;
    m      timestamp;
BEGIN
    PERFORM set_config('lock_timeout', '2s', true);
    FOR t IN SELECT * FROM (VALUES ('webhook_events', 'received_at'),
                                   ('webhook_routes', 'received_at'),
                                   ('delivery_attempts', 'started_at'),
                                   ('audit_log', 'at')) AS v (tbl, col) LOOP
        -- Months that rows in DEFAULT belong to, then the current month and those ahead.
        FOR m IN EXECUTE format(
                'SELECT DISTINCT date_trunc(''month'', %I AT TIME ZONE ''UTC'') FROM %I '
                'UNION SELECT date_trunc(''month'', now() AT TIME ZONE ''UTC'') '
                '             + make_interval(months => g) FROM generate_series(0, $1) g '
                'ORDER BY 1', t.col, t.tbl || '_default') USING months_ahead LOOP
            BEGIN
                PERFORM hookq_partition_month(t.tbl, t.col, m);
            EXCEPTION WHEN others THEN
                RAISE WARNING 'hookq: cannot create partition %_%: %',
                              t.tbl, to_char(m, 'YYYYMM'), SQLERRM;
            END;
        END LOOP;
    END LOOP;
END $$;

-- The audit log, partitioned. Its rows and its id sequence carry over; the rows land in DEFAULT
-- and hookq_ensure_partitions moves them into their months.
ALTER TABLE audit_log RENAME TO audit_log_v4;
ALTER INDEX audit_log_at_idx RENAME TO audit_log_v4_at_idx;
ALTER TABLE audit_log_v4 RENAME CONSTRAINT audit_log_pkey TO audit_log_v4_pkey;
CREATE TABLE audit_log (
    id          bigint      NOT NULL DEFAULT nextval('audit_log_id_seq'),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text,
    details     jsonb       NOT NULL DEFAULT '{}',
    remote_addr text,
    PRIMARY KEY (at, id)
) PARTITION BY RANGE (at);
CREATE INDEX audit_log_id_idx ON audit_log (id);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
INSERT INTO audit_log SELECT id, at, actor, action, target, details, remote_addr FROM audit_log_v4;
DROP TABLE audit_log_v4;

SELECT hookq_ensure_partitions(2);
