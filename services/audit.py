"""The audit log: who changed what, for which tenant, with the object before and after.

Every change made through the API (and by the key CLI) appends one row in the change's own
transaction, so a change is never committed without its audit row nor the other way round.
The table is append-only in the database (trigger from migration 0004).

Callers (plans, subscriptions, overrides, invoices, keys; billable metrics, credits,
alerts and webhooks as they arrive) call `record_change` with the conn of the change:

    record_change(conn, actor, "subscription.create", tenant_id=t,
                  obj=("subscription", created.id), before=None, after=created)

`before` / `after` are anything `jsonable` takes: pydantic models, dataclasses, dicts,
lists (an override set is audited as the whole set, so the rows keep its history).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import BaseModel

from tallyflow.core.sqlfiles import sql


class Actor(Protocol):
    """Who makes a change: an API key (api.auth.Principal) or the CLI (`CLI_ACTOR`)."""

    @property
    def key_id(self) -> int | None: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SystemActor:
    """A change not made with an API key: the CLI, a scheduled job."""

    name: str
    key_id: int | None = None


CLI_ACTOR = SystemActor("cli")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: dt.datetime
    key_id: int | None
    key_name: str
    action: str
    tenant_id: str | None
    object_type: str
    object_id: str | None
    before: Any
    after: Any


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: Decimal as its exact text, dates ISO, models and dataclasses as
    dicts (never a float: money stays exact in the log)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="python"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [jsonable(v) for v in value]
    return str(value)


def record_change(
    conn: sa.Connection,
    actor: Actor,
    action: str,
    *,
    tenant_id: str | None,
    obj: tuple[str, object | None],
    before: Any,
    after: Any,
) -> int:
    """Append one audit row in the caller's transaction; returns its id.

    `action` is `<object>.<verb>` (`plan.create`, `overrides.replace`, `invoice.void`,
    `api_key.revoke`); `obj` is (object type, object id or None for a set)."""
    object_type, object_id = obj
    return int(
        conn.execute(
            sql("audit/insert_audit_entry"),
            {
                "key_id": actor.key_id,
                "key_name": actor.name,
                "action": action,
                "tenant_id": tenant_id,
                "object_type": object_type,
                "object_id": None if object_id is None else str(object_id),
                "before": None if before is None else json.dumps(jsonable(before)),
                "after": None if after is None else json.dumps(jsonable(after)),
            },
        ).scalar_one()
    )


def audit_entries(
    conn: sa.Connection,
    *,
    tenant_id: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Entries (oldest first) for a tenant (or all) from `since` (inclusive)."""
    rows = conn.execute(
        sql("audit/select_audit_entries"),
        {"tenant_id": tenant_id, "since": since, "limit": limit},
    ).mappings()
    return [AuditEntry(**dict(r)) for r in rows]
