-- purpose: whether an endpoint was ever registered (a retired one keeps its delivery log)
SELECT id, deleted_at FROM webhook_endpoints WHERE id = :endpoint_id
