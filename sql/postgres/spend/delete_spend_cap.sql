-- purpose: remove a tenant's spend cap
DELETE FROM spend_caps WHERE tenant_id = :tenant_id
