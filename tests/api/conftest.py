"""API fixtures: the real app (lifespan, snapshot, listener) on a fresh migrated database,
and API keys for every role of the auth matrix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.app import create_app
from services.api_keys import create_api_key
from tallyflow.core.settings import Settings

TENANT = "acme"
OTHER_TENANT = "globex"

PRO_PLAN: dict[str, Any] = {
    "code": "pro",
    "name": "Pro",
    "currency": "USD",
    "base_fee": "49.00",
    "quotas": [
        {
            "metric": "api_calls",
            "included": "100",
            "limit": "1000",
            "pricing": {"model": "per_unit", "unit_price": "0.002"},
        },
        {
            "metric": "storage_gb",
            "aggregation": "max",
            "limit": "10",
            "enforcement": "soft",
            "pricing": {"model": "package", "package_size": "5", "package_price": "1.50"},
        },
        {
            "metric": "seats",
            "aggregation": "count",
            "pricing": {
                "model": "graduated",
                "tiers": [
                    {"up_to": "10", "unit_price": "2", "flat_fee": "0"},
                    {"up_to": None, "unit_price": "1"},
                ],
            },
        },
    ],
}


@dataclass(frozen=True)
class Keys:
    read: str
    write: str
    tenant: str  # read + write, restricted to TENANT
    other_tenant: str  # read + write, restricted to OTHER_TENANT
    admin: str  # read + write, any tenant

    def header(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(engine: Engine) -> Keys:
    with engine.begin() as conn:
        made = {
            name: create_api_key(conn, name=name, scopes=scopes, tenant_id=tenant).key
            for name, scopes, tenant in [
                ("read", ["billing.read"], None),
                ("write", ["billing.write"], None),
                ("tenant", ["billing.read", "billing.write"], TENANT),
                ("other_tenant", ["billing.read", "billing.write"], OTHER_TENANT),
                ("admin", ["billing.read", "billing.write"], None),
            ]
        }
    return Keys(**made)


@pytest.fixture
def admin(keys: Keys) -> dict[str, str]:
    """Headers of a global key with both scopes."""
    return keys.header(keys.admin)


@pytest.fixture
def client(settings: Settings, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
