-- purpose: a tenant's available credit per currency on :today (in effect, not expired)
SELECT currency, SUM(remaining) AS available
FROM credit_grants
WHERE tenant_id = :tenant_id
  AND effective_from <= CAST(:today AS date)
  AND (expires_on IS NULL OR expires_on > CAST(:today AS date))
GROUP BY currency
ORDER BY currency
