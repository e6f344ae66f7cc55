-- purpose: store pushed events in the inbox; a key already there is left alone (returned keys were inserted)
INSERT INTO ingest_inbox (tenant_id, event_id, metric, quantity, occurred_at, properties)
SELECT t.tenant_id, t.event_id, t.metric, t.quantity, t.occurred_at, CAST(t.properties AS jsonb)
FROM unnest(
    CAST(:tenant_ids AS text[]), CAST(:event_ids AS text[]), CAST(:metrics AS text[]),
    CAST(:quantities AS numeric[]), CAST(:occurred_ats AS timestamptz[]),
    CAST(:properties AS text[])
) AS t(tenant_id, event_id, metric, quantity, occurred_at, properties)
ORDER BY t.tenant_id, t.event_id
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING tenant_id, event_id
