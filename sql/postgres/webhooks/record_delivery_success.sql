-- purpose: mark a leased delivery delivered (only if no later lease took it over)
UPDATE webhook_deliveries
SET status = 'delivered', delivered_at = :now, next_attempt_at = NULL,
    last_status_code = :status_code, last_error = NULL
WHERE id = :delivery_id AND attempts = :attempts AND status = 'pending'
