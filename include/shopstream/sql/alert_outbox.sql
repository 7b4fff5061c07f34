-- The alert outbox and the open PagerDuty incidents, in the warehouse's schema ops.
-- They live beside the data, not in Airflow's metadata database: task code reaches the
-- warehouse through its connection on Airflow 2 and 3 alike. Safe to run again; one
-- transaction; the lock makes a second concurrent run wait (see warehouse_schema.sql).
SELECT pg_advisory_xact_lock(hashtext('shopstream.alert_outbox'));

CREATE SCHEMA IF NOT EXISTS ops;

-- One row per alert that Slack or PagerDuty did not accept when it was meant to go. A row is
-- pending until delivered_at or superseded_at is set; pending rows are never deleted.
CREATE TABLE IF NOT EXISTS ops.alert_outbox (
    id              bigserial PRIMARY KEY,
    channel         text NOT NULL CONSTRAINT outbox_channel_known CHECK (channel IN ('slack', 'pagerduty')),
    -- PagerDuty: the incident's dedup key. Slack: a key of the message, so that the same alert
    -- sent again (a retried deadline check) replaces the queued copy instead of adding one.
    dedup_key       text NOT NULL,
    action          text NOT NULL,
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL,  -- when the alert was first meant to go
    attempts        integer NOT NULL DEFAULT 1,
    last_attempt_at timestamptz NOT NULL,
    last_error      text,
    delivered_at    timestamptz,
    -- A later alert for the same key (latest wins): a queued trigger never follows its resolve.
    superseded_at   timestamptz,
    reported_at     timestamptz  -- when it was reported as stuck for a day
);

-- At most one pending alert per channel and key.
CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_one_pending_per_key
    ON ops.alert_outbox (channel, dedup_key)
    WHERE delivered_at IS NULL AND superseded_at IS NULL;

-- The incidents this platform opened and has not resolved (resolved ones age out).
CREATE TABLE IF NOT EXISTS ops.open_incident (
    dedup_key     text PRIMARY KEY,
    dag_id        text,
    task_id       text,
    -- The start of the failed run's data interval: the task succeeding in a run of that interval
    -- resolves the incident. (A date for the 04:00 deadline's incidents, which follow its rules.)
    business_date text,
    opened_at     timestamptz NOT NULL,
    note          text,
    resolved_at   timestamptz,
    resolved_by   text
);
