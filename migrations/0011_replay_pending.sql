-- Overlapping replay jobs (worker/jobs/replay_runner.h): a webhook's route pushed by one job and
-- not yet decided is not pushed again by another job; that one counts it here (and in "skipped"),
-- so the operator sees why it sent less than it selected.
ALTER TABLE replay_jobs ADD COLUMN skipped_pending bigint NOT NULL DEFAULT 0;
