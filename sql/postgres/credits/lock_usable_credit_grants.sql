-- purpose: lock every grant the drafts of one close may use (their (tenant, currency) pairs, credit left, not expired on :on), in id order (two closes queue in the same order: no deadlock)
SELECT g.tenant_id, g.id, g.currency, g.remaining, g.effective_from, g.expires_on, g.priority
FROM credit_grants AS g
JOIN unnest(CAST(:tenant_ids AS text[]), CAST(:currencies AS text[])) AS p(tenant_id, currency)
  ON p.tenant_id = g.tenant_id AND p.currency = g.currency
WHERE g.remaining > 0
  AND (g.expires_on IS NULL OR g.expires_on > CAST(:on AS date))
ORDER BY g.id
FOR UPDATE OF g
