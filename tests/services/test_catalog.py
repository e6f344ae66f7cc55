"""Catalog services on real Postgres: the database's own limits surface as InvalidInput."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine

from models.api import OverrideIn, PlanIn, QuotaIn
from services import catalog
from tallyflow.core.errors import InvalidInput


def test_too_large_numbers_are_invalid_input_not_server_errors(engine: Engine) -> None:
    # model_construct skips the request schema's own bounds: the database limit is tested
    huge_fee = PlanIn.model_construct(
        code="big", name="Big", currency="USD", base_fee=Decimal("1e30"), quotas=[]
    )
    with pytest.raises(InvalidInput, match="too large"), engine.begin() as conn:
        catalog.create_plan(conn, huge_fee)

    huge_limit = QuotaIn.model_construct(
        metric="calls",
        aggregation="sum",
        included=Decimal(0),
        limit=Decimal("1e40"),
        enforcement="hard",
        pricing={"model": "per_unit", "unit_price": "1"},
    )
    plan = PlanIn.model_construct(
        code="big", name="Big", currency="USD", base_fee=Decimal(1), quotas=[huge_limit]
    )
    with pytest.raises(InvalidInput, match="too large"), engine.begin() as conn:
        catalog.create_plan(conn, plan)

    override = OverrideIn.model_construct(
        metric="calls",
        limit=Decimal("1e40"),
        included=None,
        enforcement=None,
        effective_from=None,
        effective_to=None,
    )
    with pytest.raises(InvalidInput, match="too large"), engine.begin() as conn:
        catalog.replace_overrides(conn, "acme", [override], today=dt.date(2026, 3, 1))

    with engine.connect() as conn:
        assert catalog.list_plans(conn) == []
        assert catalog.list_overrides(conn, "acme") == []
