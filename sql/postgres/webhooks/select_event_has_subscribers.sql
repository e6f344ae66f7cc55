-- purpose: whether any live endpoint subscribes to :type (no event is recorded otherwise)
SELECT EXISTS (
    SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL AND CAST(:type AS text) = ANY(events)
)
