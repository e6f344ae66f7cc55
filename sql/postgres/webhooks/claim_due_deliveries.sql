-- purpose: lease due deliveries (count the attempt, push next_attempt_at to the lease end) and return what sending needs
UPDATE webhook_deliveries AS d
SET attempts = d.attempts + 1,
    last_attempt_at = CAST(:now AS timestamptz),
    next_attempt_at = CAST(:lease_until AS timestamptz)
FROM (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= CAST(:now AS timestamptz)
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) AS due,
webhook_events AS e,
webhook_endpoints AS w
WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.endpoint_id
RETURNING d.id, d.attempts, e.id AS event_id, e.type, e.occurred_at, e.data, w.url,
          w.secret_ciphertext
