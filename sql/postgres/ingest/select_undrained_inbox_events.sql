-- purpose: one chunk of pushed events not yet drained into the lake (after id :after, in id order), in micro-units
SELECT id, tenant_id, event_id, metric,
       (quantity * 1000000)::bigint AS quantity_micros,
       occurred_at, properties::text AS properties
FROM ingest_inbox
WHERE drained_run_id IS NULL AND id > :after
ORDER BY id
LIMIT :limit
