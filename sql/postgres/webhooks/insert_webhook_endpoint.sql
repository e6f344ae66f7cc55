-- purpose: register a webhook endpoint (its secret sealed with the secret key)
INSERT INTO webhook_endpoints (url, events, secret_ciphertext, created_at)
VALUES (:url, CAST(:events AS text[]), :secret_ciphertext, :now)
RETURNING id, url, events, created_at
