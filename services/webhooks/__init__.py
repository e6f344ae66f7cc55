"""Webhooks (contract 5b): endpoints, the outbox, signing and delivery.

- `urls`: which endpoint URLs are accepted (http/https; loopback and private addresses
  only with TALLYFLOW_WEBHOOK_ALLOW_PRIVATE).
- `outbox`: `emit` writes an event and its pending deliveries in the caller's transaction,
  so an event exists exactly when the change that causes it commits.
- `signing`: Standard Webhooks signatures (the `standardwebhooks` package).
- `delivery`: `deliver_due` sends what is due, at least once, with exponential backoff.
- `endpoints`: registering, listing and retiring endpoints; the delivery log.

No Prefect here: the `deliver_webhooks` flow wraps `delivery.deliver_due`.
"""
