-- hookq schema v6: event search by event type.
--
-- "Show me the invoice.payment_failed webhooks" walked the primary key backwards until it had a
-- page: for a rare type that is tens of thousands of rows (105 ms at p99 with 1,000,000 events,
-- bench/admin/events_bench.py), and for a type never received, every row (890 ms). With this index
-- both answer in a few milliseconds. Partial: webhooks without a type (most sources without an
-- event_header/event_field) add nothing to it, and so cost nothing more to record.
-- Built inside the migration's transaction, like 0003: on a large table, apply it at a quiet hour.
CREATE INDEX webhook_events_type_idx ON webhook_events (event_type, received_at)
    WHERE event_type IS NOT NULL;
