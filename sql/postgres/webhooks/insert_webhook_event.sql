-- purpose: write one event to the outbox (in the transaction that causes it)
INSERT INTO webhook_events (id, type, tenant_id, data, occurred_at)
VALUES (:id, :type, :tenant_id, CAST(:data AS jsonb), :occurred_at)
