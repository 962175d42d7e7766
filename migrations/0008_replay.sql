-- Replay jobs (worker/ops/replay.h, worker/jobs/replay_runner.h): one row per replay, with the
-- exact selection it was created with, its progress and where it stopped. A small table (a row per
-- operator action), kept whole: retention leaves it alone.
--
-- The selection is walked oldest first by keyset over webhook_events' primary key (received_at,
-- id); cursor_received_at/cursor_id is the last webhook handled, so a runner that died resumes
-- after it. The lease (lease_owner, lease_expires) lets exactly one worker run a job at a time; a
-- lapsed lease is taken over by any worker.
CREATE TABLE replay_jobs (
    id                 bigserial        PRIMARY KEY,
    created_at         timestamptz      NOT NULL DEFAULT now(),
    created_by         text             NOT NULL,
    remote_addr        text,
    selection          jsonb            NOT NULL,
    routes_mode        text             NOT NULL DEFAULT 'failed'
                       CHECK (routes_mode IN ('failed', 'all')),
    rate_per_s         double precision NOT NULL CHECK (rate_per_s > 0),
    "limit"            bigint           CHECK ("limit" IS NULL OR "limit" > 0),
    state              text             NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'running', 'cancelled', 'done', 'failed')),
    total              bigint           NOT NULL DEFAULT 0,
    sent               bigint           NOT NULL DEFAULT 0,
    skipped            bigint           NOT NULL DEFAULT 0,
    failed             bigint           NOT NULL DEFAULT 0,
    cursor_received_at timestamptz,
    cursor_id          uuid,
    lease_owner        text,
    lease_expires      timestamptz,
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    error              text
);
-- What the runners poll for: the few jobs not finished.
CREATE INDEX replay_jobs_active_idx ON replay_jobs (id) WHERE state IN ('pending', 'running');
