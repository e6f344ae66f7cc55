"""API keys: created once, stored only as a hash, checked in constant time.

A key reads `tf_<prefix>_<secret>`: the prefix (public, unique) finds the row, the SHA-256
of the whole key is compared with `hmac.compare_digest`. NOTE: a fast hash is right here:
the secret is 256 random bits, so there is nothing for a slow password hash to protect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from models.identifiers import is_tenant_id
from tallyflow.core.clock import utc_today
from tallyflow.core.errors import InvalidInput, NotFound
from tallyflow.core.sqlfiles import sql

SCOPES = ("billing.read", "billing.write", "usage.write")
# NOTE: billing.write changes plans, overrides, subscriptions and invoices: a tenant's own
# key holding it could rewrite its bill, so only a global key may hold it (also a CHECK).
GLOBAL_ONLY_SCOPES = frozenset({"billing.write"})
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
    expires_on: dt.date | None = None  # exclusive: the key stops working that UTC day

    def expired(self, today: dt.date) -> bool:
        return self.expires_on is not None and today >= self.expires_on


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


def check_new_key(
    name: str,
    scopes: Iterable[str],
    tenant_id: str | None,
    *,
    expires_on: dt.date | None = None,
    today: dt.date | None = None,
) -> tuple[str, ...]:
    """The de-duplicated scopes of a key to create; InvalidInput for bad input."""
    wanted = tuple(dict.fromkeys(scopes))
    if not name.strip():
        raise InvalidInput("name must not be blank")
    if not wanted:
        raise InvalidInput(f"at least one scope is needed ({', '.join(SCOPES)})")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    if tenant_id is not None and not is_tenant_id(tenant_id):
        raise InvalidInput(f"tenant {tenant_id!r} is not a valid tenant id")
    global_only = [s for s in wanted if s in GLOBAL_ONLY_SCOPES]
    if tenant_id is not None and global_only:
        raise InvalidInput(
            f"scope {global_only[0]} is for global keys only: a tenant key may hold "
            "usage.write (push usage) and billing.read",
            code="tenant_key_scope",
        )
    if expires_on is not None and expires_on <= (today or utc_today()):
        raise InvalidInput(f"expires_on {expires_on} is not in the future")
    return wanted


def _new_secret() -> tuple[str, str]:
    prefix = secrets.token_hex(6)
    return prefix, f"{_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def create_api_key(
    conn: sa.Connection,
    *,
    name: str,
    scopes: Iterable[str],
    tenant_id: str | None = None,
    expires_on: dt.date | None = None,
    today: dt.date | None = None,
) -> NewApiKey:
    """Create a key with the given scopes, optionally restricted to one tenant."""
    wanted = check_new_key(name, scopes, tenant_id, expires_on=expires_on, today=today)
    prefix, key = _new_secret()
    created = conn.execute(
        sql("api_keys/insert_api_key"),
        {
            "name": name,
            "prefix": prefix,
            "key_hash": hash_key(key),
            "scopes": list(wanted),
            "tenant_id": tenant_id,
            "expires_on": expires_on,
        },
    ).one()
    conn.execute(sql("api_keys/notify_api_keys"), {"payload": prefix})
    record = ApiKeyRecord(created.id, name, prefix, hash_key(key), wanted, tenant_id, expires_on)
    return NewApiKey(key=key, record=record, created_at=created.created_at)


def revoke_api_key(conn: sa.Connection, target: str) -> ApiKeyRecord:
    """Revoke a live key given its id, its prefix or the key itself; NotFound otherwise."""
    prefix = key_prefix(target) or target
    key_id = int(target) if target.isdigit() and len(target) < 19 else None
    row = conn.execute(sql("api_keys/revoke_api_key"), {"key_id": key_id, "prefix": prefix}).first()
    if row is None:
        raise NotFound(f"no live API key matches {target!r}", code="api_key_not_found")
    conn.execute(sql("api_keys/notify_api_keys"), {"payload": row.prefix})
    return ApiKeyRecord(
        row.id, row.name, row.prefix, "", tuple(row.scopes), row.tenant_id, row.expires_on
    )


def rotate_api_key(
    conn: sa.Connection, name: str, *, today: dt.date | None = None
) -> tuple[ApiKeyRecord, NewApiKey]:
    """Revoke the one live key named `name` and create its successor (same name, scopes,
    tenant and expiry, a new secret), in the caller's transaction.

    NotFound when no live key has the name; InvalidInput when several do (rotate by a
    unique name only: which one was meant is not ours to guess)."""
    live = [k for k in live_api_keys(conn) if k.name == name]
    if not live:
        raise NotFound(f"no live API key is named {name!r}", code="api_key_not_found")
    if len(live) > 1:
        raise InvalidInput(
            f"{len(live)} live API keys are named {name!r}; revoke all but one first",
            code="ambiguous_key_name",
        )
    old = revoke_api_key(conn, str(live[0].id))
    expires_on = old.expires_on
    if expires_on is not None and expires_on <= (today or utc_today()):
        expires_on = None  # NOTE: cannot happen for a live key (expired keys are not live)
    new = create_api_key(
        conn,
        name=name,
        scopes=old.scopes,
        tenant_id=old.tenant_id,
        expires_on=expires_on,
        today=today,
    )
    return old, new


def live_api_keys(conn: sa.Connection, *, prefix: str | None = None) -> list[ApiKeyRecord]:
    rows = conn.execute(sql("api_keys/select_api_keys"), {"prefix": prefix})
    return [
        ApiKeyRecord(r.id, r.name, r.prefix, r.key_hash, tuple(r.scopes), r.tenant_id, r.expires_on)
        for r in rows
    ]


def touch_api_keys(conn: sa.Connection, used: dict[int, dt.datetime]) -> None:
    """Record when keys were last used (one statement for all of them)."""
    if used:
        conn.execute(
            sql("api_keys/update_api_key_last_used"),
            [{"key_id": k, "used_at": at} for k, at in used.items()],
        )


def verify(record: ApiKeyRecord | None, key: str) -> bool:
    """Constant-time comparison of the key's hash with the stored one."""
    expected = record.key_hash if record is not None else hash_key("")
    return hmac.compare_digest(expected, hash_key(key)) and record is not None


class ApiKeyCache:
    """Live keys by prefix, held in memory so that authentication costs no DB round trip.

    Reloaded whole on `NOTIFY tallyflow_api_keys` (sent when a key is created or revoked)
    and periodically; a prefix not in the cache is looked up in the database once (a key
    created a moment ago). An unknown prefix is remembered (bounded, least recently seen
    dropped first) until the next reload, and lookups are budgeted per second: a stream
    of bogus keys costs no database round trip per key.
    """

    def __init__(self, *, negative_size: int = 10_000, misses_per_second: int = 20) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._generation = 0  # bumped by every reload
        self._lock = threading.Lock()
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self._negative_size = negative_size
        self._misses_per_second = misses_per_second
        self._budget_second = 0
        self._budget_used = 0
        self._used: dict[int, dt.datetime] = {}  # key id -> last use not yet written
        self._touched: dict[int, float] = {}  # key id -> monotonic time last recorded
        self.lookups = 0  # database round trips for cache misses (for tests and metrics)

    def get(self, prefix: str) -> ApiKeyRecord | None:
        return self._keys.get(prefix)

    def known_unknown(self, prefix: str) -> bool:
        """True when `prefix` was looked up and not found since the last reload, or when
        this second's lookup budget is spent (then the key is treated as unknown)."""
        with self._lock:
            if prefix in self._unknown:
                self._unknown.move_to_end(prefix)
                return True
            second = int(time.monotonic())
            if second != self._budget_second:
                self._budget_second, self._budget_used = second, 0
            if self._budget_used >= self._misses_per_second:
                return True
            self._budget_used += 1
            return False

    def reload(self, conn: sa.Connection) -> int:
        keys = {k.prefix: k for k in live_api_keys(conn)}
        with self._lock:
            self._keys = keys
            self._unknown.clear()
            self._generation += 1
        return len(keys)

    def lookup(self, conn: sa.Connection, prefix: str) -> ApiKeyRecord | None:
        """A cache miss: read the one key from the database and remember it if live.

        NOTE: not remembered when a reload happened meanwhile: that reload may have been
        for this key's revocation, which the read here may predate.
        """
        generation = self._generation
        self.lookups += 1
        found = live_api_keys(conn, prefix=prefix)
        with self._lock:
            if self._generation == generation:
                if found:
                    self._keys = {**self._keys, prefix: found[0]}
                else:
                    self._unknown[prefix] = None
                    while len(self._unknown) > self._negative_size:
                        self._unknown.popitem(last=False)
        return found[0] if found else None

    def mark_used(self, key_id: int, now: dt.datetime) -> None:
        """Note a use; written by `flush_used` at most once a minute per key."""
        mono = time.monotonic()
        if mono - self._touched.get(key_id, -1e9) < 60:
            return
        with self._lock:
            self._touched[key_id] = mono
            self._used[key_id] = now

    def flush_used(self, conn: sa.Connection) -> int:
        with self._lock:
            used, self._used = self._used, {}
        touch_api_keys(conn, used)
        return len(used)
