-- purpose: a plan change: end the tenant's open subscription at the start of the new one
UPDATE subscriptions
SET ends_on = :starts_on, updated_at = now()
WHERE tenant_id = :tenant_id AND ends_on IS NULL AND starts_on < :starts_on
RETURNING id
