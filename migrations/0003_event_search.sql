-- hookq schema v3: event search by dedup key.
--
-- "Did the provider's delivery X reach us?" is asked by dedup key (a provider's delivery id), with
-- no source or time range to bound it: without this index that is a scan of every partition
-- (~110 ms at 1,000,000 events, against ~20 ms for the other filters, which the primary key,
-- (source, received_at), the pending index and webhook_routes' primary key already serve).
-- Built inside the migration's transaction: on a large existing table, recording waits for the
-- build, so apply it at a quiet hour.
CREATE INDEX webhook_events_dedup_idx ON webhook_events (dedup_key);
