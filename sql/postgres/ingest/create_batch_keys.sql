-- purpose: the session's scratch table of a batch's keys for the dedupe lookup (emptied at each commit)
CREATE TEMP TABLE IF NOT EXISTS batch_keys (
    position bigint NOT NULL, tenant_id text NOT NULL, event_id bytea NOT NULL
) ON COMMIT DELETE ROWS
