-- purpose: end the tenant's open subscription on a date (a plan change or a cancellation)
UPDATE subscriptions
SET ends_on = :starts_on, updated_at = now()
WHERE tenant_id = :tenant_id AND ends_on IS NULL AND starts_on < :starts_on
RETURNING id
