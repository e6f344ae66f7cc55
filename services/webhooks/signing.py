"""Standard Webhooks signatures, by the `standardwebhooks` package (no hand-rolled HMAC)."""

from __future__ import annotations

import base64
import datetime as dt
import math
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + 32 random bytes in base64 (the spec's format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret: str, msg_id: str, timestamp: dt.datetime, body: str) -> dict[str, str]:
    """The three headers of a delivery: webhook-id, webhook-timestamp, webhook-signature.

    The signature is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the secret's key.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body),
    }
