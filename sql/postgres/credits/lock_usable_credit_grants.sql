-- purpose: lock the grants an invoice may use (its tenant and currency, effective before period_end, not expired on :on), in id order
SELECT id, currency, remaining, effective_from, expires_on, priority
FROM credit_grants
WHERE tenant_id = :tenant_id AND currency = :currency AND remaining > 0
  AND effective_from < CAST(:period_end AS date)
  AND (expires_on IS NULL OR expires_on > CAST(:on AS date))
ORDER BY id
FOR UPDATE
