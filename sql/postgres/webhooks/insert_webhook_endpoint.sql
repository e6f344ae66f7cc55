-- purpose: register a webhook endpoint
INSERT INTO webhook_endpoints (url, events, secret, created_at)
VALUES (:url, CAST(:events AS text[]), :secret, :now)
RETURNING id, url, events, created_at
