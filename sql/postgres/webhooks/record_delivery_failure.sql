-- purpose: record a failed attempt of a leased delivery: retry at :next_attempt_at, or give up (failed) when it is null
UPDATE webhook_deliveries
SET status = CASE WHEN CAST(:next_attempt_at AS timestamptz) IS NULL THEN 'failed' ELSE 'pending' END,
    next_attempt_at = CAST(:next_attempt_at AS timestamptz),
    last_status_code = :status_code,
    last_error = :error
WHERE id = :delivery_id AND attempts = :attempts AND status = 'pending'
