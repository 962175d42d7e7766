-- Batches and entity ordering (worker/pipeline/fanout.h, ordering.h). A route's row may now say:
--   split      the webhook's events went out as deliveries of their own (each its own webhook
--              row, whose headers name this one as ":hookq-parent");
--   waiting    queued behind a delivery of the same entity on this route;
--   coalesced  merged into a newer update of the same entity (last_error names which).
-- split and coalesced count as done for the webhook's status, waiting as held back (parked).
ALTER TABLE webhook_routes DROP CONSTRAINT IF EXISTS webhook_routes_status_check;
ALTER TABLE webhook_routes ADD CONSTRAINT webhook_routes_status_check
    CHECK (status IN ('delivered', 'retrying', 'parked', 'dead', 'split', 'waiting', 'coalesced'));
