-- hookq schema v6: event search by event type and by a rare route.
--
-- "Show me the invoice.payment_failed webhooks" walked the primary key backwards until it had a
-- page: for a rare type that is tens of thousands of rows (105 ms at p99 with 1,000,000 events,
-- bench/admin/events_bench.py), and for a type never received, every row (890 ms). With this index
-- both answer in a few milliseconds. Partial: webhooks without a type (most sources without an
-- event_header/event_field) add nothing to it, and so cost nothing more to record.
-- Built inside the migration's transaction, like 0003: on a large table, apply it at a quiet hour.
CREATE INDEX webhook_events_type_idx ON webhook_events (event_type, received_at)
    WHERE event_type IS NOT NULL;

-- By route: the search walked the primary key checking each webhook's routes until it had a
-- page, which for a route that is rare or gone is most of the table (79 ms at p99 for a route no
-- webhook has, same bench). The planner now starts from the route's own rows.
CREATE INDEX webhook_routes_route_idx ON webhook_routes (route, received_at, event_id);
