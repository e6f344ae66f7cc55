-- purpose: append one audit row (in the transaction of the change it records)
INSERT INTO audit_log (key_id, key_name, action, tenant_id, object_type, object_id, before, after)
VALUES (:key_id, :key_name, :action, :tenant_id, :object_type, :object_id,
        CAST(:before AS jsonb), CAST(:after AS jsonb))
RETURNING id
