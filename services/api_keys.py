"""API keys: created once, stored only as a hash, checked in constant time.

A key reads `tf_<prefix>_<secret>`: the prefix (public, unique) finds the row, the SHA-256
of the whole key is compared with `hmac.compare_digest`. NOTE: a fast hash is right here:
the secret is 256 random bits, so there is nothing for a slow password hash to protect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from models.identifiers import TENANT_ID_PATTERN as TENANT_ID_RE

from tallyflow.core.errors import InvalidInput, NotFound
from tallyflow.core.sqlfiles import sql

SCOPES = ("billing.read", "billing.write")
NOTIFY_CHANNEL = "tallyflow_api_keys"
_KEY_PREFIX = "tf_"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A live key as stored (hash, never the key)."""

    id: int
    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: `key` is shown once and never stored."""

    key: str
    record: ApiKeyRecord
    created_at: dt.datetime


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, None otherwise."""
    if not key.startswith(_KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(_KEY_PREFIX) :].partition("_")
    if not sep or not prefix or not secret:
        return None
    return prefix


def check_new_key(name: str, scopes: Iterable[str], tenant_id: str | None) -> tuple[str, ...]:
    """The de-duplicated scopes of a key to create; InvalidInput for bad input."""
    wanted = tuple(dict.fromkeys(scopes))
    if not name.strip():
        raise InvalidInput("name must not be blank")
    if not wanted:
        raise InvalidInput(f"at least one scope is needed ({', '.join(SCOPES)})")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    if tenant_id is not None and not re.fullmatch(TENANT_ID_RE, tenant_id):
        raise InvalidInput(f"tenant {tenant_id!r} is not a valid tenant id")
    return wanted


def create_api_key(
    conn: sa.Connection, *, name: str, scopes: Iterable[str], tenant_id: str | None = None
) -> NewApiKey:
    """Create a key with the given scopes, optionally restricted to one tenant."""
    wanted = check_new_key(name, scopes, tenant_id)
    prefix = secrets.token_hex(6)
    key = f"{_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    created = conn.execute(
        sql("api_keys/insert_api_key"),
        {
            "name": name,
            "prefix": prefix,
            "key_hash": hash_key(key),
            "scopes": list(wanted),
            "tenant_id": tenant_id,
        },
    ).one()
    conn.execute(sql("api_keys/notify_api_keys"), {"payload": prefix})
    record = ApiKeyRecord(created.id, name, prefix, hash_key(key), wanted, tenant_id)
    return NewApiKey(key=key, record=record, created_at=created.created_at)


def revoke_api_key(conn: sa.Connection, target: str) -> ApiKeyRecord:
    """Revoke a live key given its id, its prefix or the key itself; NotFound otherwise."""
    prefix = key_prefix(target) or target
    key_id = int(target) if target.isdigit() else None
    row = conn.execute(sql("api_keys/revoke_api_key"), {"key_id": key_id, "prefix": prefix}).first()
    if row is None:
        raise NotFound(f"no live API key matches {target!r}", code="api_key_not_found")
    conn.execute(sql("api_keys/notify_api_keys"), {"payload": row.prefix})
    return ApiKeyRecord(row.id, row.name, row.prefix, "", (), None)


def live_api_keys(conn: sa.Connection, *, prefix: str | None = None) -> list[ApiKeyRecord]:
    rows = conn.execute(sql("api_keys/select_api_keys"), {"prefix": prefix})
    return [
        ApiKeyRecord(r.id, r.name, r.prefix, r.key_hash, tuple(r.scopes), r.tenant_id) for r in rows
    ]


def verify(record: ApiKeyRecord | None, key: str) -> bool:
    """Constant-time comparison of the key's hash with the stored one."""
    expected = record.key_hash if record is not None else hash_key("")
    return hmac.compare_digest(expected, hash_key(key)) and record is not None


class ApiKeyCache:
    """Live keys by prefix, held in memory so that authentication costs no DB round trip.

    Reloaded whole on `NOTIFY tallyflow_api_keys` (sent when a key is created or revoked);
    a prefix not in the cache is looked up in the database once (a key created a moment ago).
    """

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._generation = 0  # bumped by every reload
        self._lock = threading.Lock()

    def get(self, prefix: str) -> ApiKeyRecord | None:
        return self._keys.get(prefix)

    def reload(self, conn: sa.Connection) -> int:
        keys = {k.prefix: k for k in live_api_keys(conn)}
        with self._lock:
            self._keys = keys
            self._generation += 1
        return len(keys)

    def lookup(self, conn: sa.Connection, prefix: str) -> ApiKeyRecord | None:
        """A cache miss: read the one key from the database and remember it if live.

        NOTE: not remembered when a reload happened meanwhile: that reload may have been
        for this key's revocation, which the read here may predate.
        """
        generation = self._generation
        found = live_api_keys(conn, prefix=prefix)
        if not found:
            return None
        with self._lock:
            if self._generation == generation:
                self._keys = {**self._keys, prefix: found[0]}
        return found[0]
