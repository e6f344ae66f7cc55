-- purpose: the sealed secrets of the live webhook endpoints (to check at startup that the secret key opens them)
SELECT id, secret_ciphertext FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id
