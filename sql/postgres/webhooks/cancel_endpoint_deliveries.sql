-- purpose: cancel the pending deliveries of a retired endpoint
UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL
WHERE endpoint_id = :endpoint_id AND status = 'pending'
