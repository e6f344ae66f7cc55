-- purpose: the delivery log of one endpoint, newest first
SELECT d.id, d.event_id, e.type AS event_type, e.tenant_id, d.status, d.attempts,
       d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error,
       d.delivered_at, d.created_at
FROM webhook_deliveries AS d
JOIN webhook_events AS e ON e.id = d.event_id
WHERE d.endpoint_id = :endpoint_id
ORDER BY d.id DESC
LIMIT :limit
