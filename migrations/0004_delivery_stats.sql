-- hookq schema v4: delivery statistics, rolled up as the worker records.
--
-- Per-route and per-source counts, rates and latency percentiles over 1 h .. 7 d must stay fast
-- at millions of attempts, so they are never computed from delivery_attempts at request time:
-- the recorder adds each batch into these rollups in the same transaction as the attempts it
-- writes, so they cannot drift from them (a batch that rolls back adds nothing).
--
-- Shape:
--  * one row per (bucket, source, route, worker_id): per minute, kept 48 h (the 1 h view and the
--    5-minute health figures), and per hour, kept 35 days (the 24 h and 7 d views). worker_id is in
--    the key so that each worker only ever updates its own rows: several workers recording at once
--    never wait on (or deadlock over) a shared counter row, and a reader sums the workers' rows.
--    Settled hours are then merged into one row (hookq_stats_compact), so that the 7 d read does
--    not grow with the number of workers.
--  * latencies as log-scale histograms (bigint[], element k+1 = number of samples in bucket k),
--    which add exactly, unlike stored percentiles. The zeros at either end are left out (the
--    array's lower bound says where it starts, '[26:47]={...}'): a 7-day query reads thousands of
--    rows, and printing their arrays is most of its cost. A sample of `us` microseconds
--    is in bucket k when exactly k of the bounds round(100 * 2^(j/4)), j = 0..135, are <= us
--    (width_bucket): bucket 0 is under 0.1 ms, then four buckets per doubling, so a percentile
--    read back as its bucket's geometric middle is within 9% of the true value, from 0.1 ms up to
--    16.7 days (the last bucket takes everything longer). The worker has the same table
--    (worker/store/sql.h, kStatsBounds; a unit test compares them) and counts in integer
--    microseconds on both sides, so it and hookq_stats_bucket() below never disagree on a bound.
--  * duration_hist: attempt duration; e2e_hist: received_at -> end of the attempt, for delivered
--    attempts only (how late the application got the webhook).
-- The primary key leads with bucket: every reader asks for a time range (and retention deletes
-- one), and a range of minutes over 20 routes x a few workers is a few thousand rows at most.

CREATE FUNCTION hookq_stats_bounds() RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{100,119,141,168,200,238,283,336,400,476,566,673,800,951,1131,1345,1600,1903,2263,
      2691,3200,3805,4525,5382,6400,7611,9051,10763,12800,15222,18102,21527,25600,30444,36204,43054,
      51200,60887,72408,86108,102400,121775,144815,172216,204800,243550,289631,344431,409600,487099,
      579262,688862,819200,974198,1158524,1377725,1638400,1948397,2317048,2755449,3276800,3896794,
      4634095,5510899,6553600,7793588,9268190,11021797,13107200,15587175,18536380,22043595,
      26214400,31174351,37072760,44087190,52428800,62348702,74145520,88174380,104857600,124697404,
      148291040,176348760,209715200,249394808,296582080,352697520,419430400,498789616,593164160,
      705395040,838860800,997579232,1186328320,1410790079,1677721600,1995158464,2372656641,
      2821580158,3355443200,3990316927,4745313281,5643160317,6710886400,7980633855,9490626562,
      11286320634,13421772800,15961267710,18981253125,22572641268,26843545600,31922535419,
      37962506250,45145282535,53687091200,63845070839,75925012499,90290565071,107374182400,
      127690141678,151850024999,180581130142,214748364800,255380283355,303700049998,361162260284,
      429496729600,510760566711,607400099995,722324520568,858993459200,1021521133421,
      1214800199990,1444649041135}'::bigint[]
$$;

-- The histogram bucket (0-based) of a duration in microseconds.
CREATE FUNCTION hookq_stats_bucket(us bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT width_bucket(greatest(us, 0), hookq_stats_bounds())
$$;

-- Element-wise sum of two histograms whose subscripts are their buckets + 1 (the lower bound
-- need not be 1: zeros at either end are left out), missing elements counting as zeros.
CREATE FUNCTION hookq_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(a) = 0 THEN b WHEN cardinality(b) = 0 THEN a ELSE
        (SELECT (format('[%s:%s]=', lo, hi) ||
                 (SELECT array_agg(coalesce(a[i], 0) + coalesce(b[i], 0) ORDER BY i)
                  FROM generate_series(lo, hi) i)::text)::bigint[]
         FROM (SELECT least(array_lower(a, 1), array_lower(b, 1)) AS lo,
                      greatest(array_upper(a, 1), array_upper(b, 1)) AS hi) x)
    END
$$;

CREATE TABLE delivery_stats_minute (
    bucket          timestamptz NOT NULL,
    source          text        NOT NULL,
    route           text        NOT NULL,
    worker_id       text        NOT NULL,
    attempts        bigint      NOT NULL DEFAULT 0,
    delivered       bigint      NOT NULL DEFAULT 0,
    retried         bigint      NOT NULL DEFAULT 0,
    dead            bigint      NOT NULL DEFAULT 0,
    parked          bigint      NOT NULL DEFAULT 0,
    timeouts        bigint      NOT NULL DEFAULT 0,
    duration_us_sum bigint      NOT NULL DEFAULT 0,
    duration_hist   bigint[]    NOT NULL DEFAULT '{}',
    e2e_hist        bigint[]    NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, source, route, worker_id)
);

CREATE TABLE delivery_stats_hour (LIKE delivery_stats_minute INCLUDING ALL);

-- The histograms of many rows summed (the reader sums in the worker instead: a SQL function per
-- row is too slow for thousands of rows, but fine for the compaction below).
CREATE AGGREGATE hookq_hist_sum(bigint[]) (SFUNC = hookq_hist_add, STYPE = bigint[],
                                           INITCOND = '{}');

-- Hours before `settled` (the worker passes the start of the previous hour): every worker's rows
-- merged into one per source and route (worker_id '*'). A 7-day query reads 168 x routes rows then,
-- whatever the number of workers, where it would read that many per worker. Recorders write their
-- own rows of the current hour (a batch late by more than an hour, after an outage, adds a fresh
-- per-worker row that the next compaction merges), so compaction and recording rarely meet; one
-- compaction at a time (the others skip), deleting and inserting in key order.
CREATE FUNCTION hookq_stats_compact(settled timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(7526466004693365619) THEN
        RETURN;
    END IF;
    WITH victims AS (
        SELECT bucket, source, route, worker_id FROM delivery_stats_hour
        WHERE bucket < settled AND worker_id <> '*'
        ORDER BY bucket, source, route, worker_id FOR UPDATE
    ), moved AS (
        DELETE FROM delivery_stats_hour h USING victims v
        WHERE (h.bucket, h.source, h.route, h.worker_id) =
              (v.bucket, v.source, v.route, v.worker_id)
        RETURNING h.*
    )
    INSERT INTO delivery_stats_hour AS t (bucket, source, route, worker_id, attempts, delivered,
                                          retried, dead, parked, timeouts, duration_us_sum,
                                          duration_hist, e2e_hist)
    SELECT bucket, source, route, '*', sum(attempts), sum(delivered), sum(retried), sum(dead),
           sum(parked), sum(timeouts), sum(duration_us_sum), hookq_hist_sum(duration_hist),
           hookq_hist_sum(e2e_hist)
    FROM moved GROUP BY bucket, source, route ORDER BY bucket, source, route
    ON CONFLICT (bucket, source, route, worker_id) DO UPDATE SET
        attempts = t.attempts + EXCLUDED.attempts, delivered = t.delivered + EXCLUDED.delivered,
        retried = t.retried + EXCLUDED.retried, dead = t.dead + EXCLUDED.dead,
        parked = t.parked + EXCLUDED.parked, timeouts = t.timeouts + EXCLUDED.timeouts,
        duration_us_sum = t.duration_us_sum + EXCLUDED.duration_us_sum,
        duration_hist = hookq_hist_add(t.duration_hist, EXCLUDED.duration_hist),
        e2e_hist = hookq_hist_add(t.e2e_hist, EXCLUDED.e2e_hist);
END $$;

-- The worker's periodic maintenance (hourly, with the partitions): minute rows past 48 h and hour
-- rows past `hour_days` deleted (a plain DELETE on the primary key's leading column: a few
-- thousand rows at a time), settled hours compacted.
CREATE FUNCTION hookq_stats_retention(hour_days integer DEFAULT 35) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_stats_minute WHERE bucket < now() - interval '48 hours';
    DELETE FROM delivery_stats_hour WHERE bucket < now() - make_interval(days => hour_days);
    PERFORM hookq_stats_compact(date_trunc('hour', now()) - interval '1 hour');
END $$;

-- Backfill from the attempts already recorded (minute rows for 48 h, hour rows for 7 days), with
-- the same rules as the worker: a timeout is an attempt with no HTTP status whose transport error
-- is libcurl's timeout text. One pass over 7 days of delivery_attempts (BRIN on started_at) joined
-- to their events by id: seconds at millions of attempts, run once inside this migration.
-- Attempts recorded by workers still running the previous version after this commits are not in
-- the rollups: upgrade the workers right after migrating.
CREATE FUNCTION hookq_stats_backfill(unit text, since timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
        WITH a AS (
            SELECT date_trunc(%L, a.started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS bucket,
                   e.source, a.route,
                   coalesce(a.worker_id, '') AS worker_id, a.outcome,
                   (a.http_status IS NULL AND (a.error LIKE '%%timed out%%'
                                               OR a.error LIKE 'Timeout was reached%%')) AS timeout,
                   round(a.duration_ms * 1000)::bigint AS us,
                   CASE WHEN a.outcome = 'delivered' THEN round(extract(epoch FROM
                       a.started_at - e.received_at) * 1000000 + a.duration_ms * 1000)::bigint
                   END AS e2e_us
            FROM delivery_attempts a JOIN webhook_events e ON e.id = a.event_id
            WHERE a.started_at >= $1
        ), c AS (
            SELECT bucket, source, route, worker_id, count(*) AS attempts,
                   count(*) FILTER (WHERE outcome = 'delivered') AS delivered,
                   count(*) FILTER (WHERE outcome = 'retry') AS retried,
                   count(*) FILTER (WHERE outcome = 'dead') AS dead,
                   count(*) FILTER (WHERE outcome = 'parked') AS parked,
                   count(*) FILTER (WHERE timeout) AS timeouts, sum(us) AS duration_us_sum
            FROM a GROUP BY 1, 2, 3, 4
        ), h AS (
            SELECT bucket, source, route, worker_id, kind, jsonb_object_agg(k, n) AS m,
                   min(k) AS bottom, max(k) AS top
            FROM (SELECT bucket, source, route, worker_id, 'd' AS kind,
                         hookq_stats_bucket(us) AS k, count(*) AS n FROM a GROUP BY 1, 2, 3, 4, 6
                  UNION ALL
                  SELECT bucket, source, route, worker_id, 'e', hookq_stats_bucket(e2e_us), count(*)
                  FROM a WHERE e2e_us IS NOT NULL GROUP BY 1, 2, 3, 4, 6) x
            GROUP BY 1, 2, 3, 4, 5
        ), arr AS (
            SELECT bucket, source, route, worker_id, kind,
                   (format('[%%s:%%s]=', bottom + 1, top + 1) ||
                    ARRAY(SELECT coalesce((m ->> s::text)::bigint, 0)
                          FROM generate_series(bottom, top) s ORDER BY s)::text)::bigint[] AS hist
            FROM h
        )
        INSERT INTO %I (bucket, source, route, worker_id, attempts, delivered, retried, dead,
                        parked, timeouts, duration_us_sum, duration_hist, e2e_hist)
        SELECT c.bucket, c.source, c.route, c.worker_id, c.attempts, c.delivered, c.retried,
               c.dead, c.parked, c.timeouts, c.duration_us_sum, coalesce(d.hist, '{}'),
               coalesce(e.hist, '{}')
        FROM c
        LEFT JOIN arr d ON (d.bucket, d.source, d.route, d.worker_id, d.kind) =
                           (c.bucket, c.source, c.route, c.worker_id, 'd')
        LEFT JOIN arr e ON (e.bucket, e.source, e.route, e.worker_id, e.kind) =
                           (c.bucket, c.source, c.route, c.worker_id, 'e')
        ON CONFLICT DO NOTHING
    $q$, unit, 'delivery_stats_' || unit) USING since;
END $$;

SELECT hookq_stats_backfill('minute', date_trunc('minute', now()) - interval '48 hours');
SELECT hookq_stats_backfill('hour', date_trunc('hour', now()) - interval '7 days');
