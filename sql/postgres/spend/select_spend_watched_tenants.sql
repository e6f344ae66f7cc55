-- purpose: tenants (all, or :tenant_ids) whose spend matters: a spend alert or a spend cap
SELECT tenant_id FROM alerts
WHERE kind = 'spend'
  AND (CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[])))
UNION
SELECT tenant_id FROM spend_caps
WHERE CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[]))
ORDER BY tenant_id
