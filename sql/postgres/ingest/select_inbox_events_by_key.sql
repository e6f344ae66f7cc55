-- purpose: the stored inbox events for the given keys (to tell duplicates from conflicting ones)
SELECT i.tenant_id, i.event_id, i.metric, (i.quantity * 1000000)::bigint AS quantity_micros,
       i.occurred_at
FROM ingest_inbox i
JOIN unnest(CAST(:tenant_ids AS text[]), CAST(:event_ids AS text[])) AS k(tenant_id, event_id)
  ON i.tenant_id = k.tenant_id AND i.event_id = k.event_id
