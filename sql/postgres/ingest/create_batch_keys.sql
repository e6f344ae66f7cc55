-- purpose: the session's scratch table of a batch's key hashes for the dedupe lookup (emptied at each commit)
CREATE TEMP TABLE IF NOT EXISTS batch_keys (
    position bigint NOT NULL, key_hash bigint NOT NULL
) ON COMMIT DELETE ROWS
