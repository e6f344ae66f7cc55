-- purpose: create a prepaid credit grant (remaining starts at amount)
INSERT INTO credit_grants (tenant_id, currency, amount, remaining, effective_from, expires_on, priority, note, created_at)
VALUES (:tenant_id, :currency, :amount, :amount, :effective_from, :expires_on, :priority, :note, :now)
RETURNING id
