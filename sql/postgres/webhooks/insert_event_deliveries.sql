-- purpose: one pending delivery per live endpoint subscribed to each of the given events (due now)
INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at)
SELECT e.id, w.id, e.occurred_at
FROM webhook_events AS e
JOIN webhook_endpoints AS w ON w.deleted_at IS NULL AND e.type = ANY(w.events)
WHERE e.id = ANY(CAST(:event_ids AS text[]))
ON CONFLICT (event_id, endpoint_id) DO NOTHING
