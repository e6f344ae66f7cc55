-- purpose: the key hash of each row of a frame of keys, in the frame's row order
-- NOTE: a single-table SELECT keeps the row order (DuckDB "Order Preservation", with
-- preserve_insertion_order on, the default): the hashes line up with the frame's rows.
SELECT event_key_hash(tenant_id, event_id) AS key_hash FROM keys
