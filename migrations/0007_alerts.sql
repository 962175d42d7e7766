-- Alerting (worker/alerts/): the current state of every alert, the transitions that the dashboard
-- and the audit trail show, and silences. Small tables: retention deletes from alert_events by
-- age ([retention] alerts), the large tables keep their partitions.

-- One row per fingerprint (the rule and its label values, e.g. "failure_ratio{route=orders}"),
-- written only by the worker that holds the alerting lease, so a new leader carries on where the
-- last one stopped (pending stays pending, firing is not announced twice).
CREATE TABLE alerts (
    fingerprint      text             PRIMARY KEY,
    rule             text             NOT NULL,
    labels           jsonb            NOT NULL DEFAULT '{}',
    severity         text             NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
    state            text             NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    value            double precision,
    threshold        double precision,
    summary          text             NOT NULL DEFAULT '',
    runbook          text             NOT NULL DEFAULT '',
    pending_since    timestamptz,
    firing_since     timestamptz,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    updated_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX alerts_state_idx ON alerts (state, updated_at DESC);

-- Every transition and every notification attempt's outcome.
CREATE TABLE alert_events (
    id          bigserial        PRIMARY KEY,
    at          timestamptz      NOT NULL DEFAULT now(),
    fingerprint text             NOT NULL,
    rule        text             NOT NULL,
    labels      jsonb            NOT NULL DEFAULT '{}',
    severity    text             NOT NULL,
    state       text             NOT NULL,   -- the state entered: pending, firing, resolved
    value       double precision,
    threshold   double precision,
    -- channel name -> "sent" | "silenced" | "rate_limited" | "error: ..." (never a URL or secret)
    notified    jsonb            NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_at_idx ON alert_events (at);
CREATE INDEX alert_events_fp_idx ON alert_events (fingerprint, at DESC);

-- A silence mutes notifications (not evaluation: the alert still shows) of every alert whose
-- rule and labels match all of `matchers` ({"rule": "breaker_open", "route": "orders"}; an empty
-- object matches everything), from starts_at until ends_at or until expired.
CREATE TABLE alert_silences (
    id         bigserial   PRIMARY KEY,
    matchers   jsonb       NOT NULL DEFAULT '{}',
    starts_at  timestamptz NOT NULL DEFAULT now(),
    ends_at    timestamptz NOT NULL,
    comment    text        NOT NULL DEFAULT '',
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expired_at timestamptz,          -- set when deleted early; the row stays for the record
    CHECK (ends_at > starts_at)
);
CREATE INDEX alert_silences_active_idx ON alert_silences (ends_at) WHERE expired_at IS NULL;
