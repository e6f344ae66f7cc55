"""Reading what an invoice run prices: the catalog and each tenant's billable windows.

Three set-based reads (subscription windows, usage totals per window and metric, override
days) over usage_daily and the catalog, joined in memory by subscription id.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa

from models.pricing import pricing_from_row
from services.invoicing.compute import (
    BillableWindow,
    MetricValues,
    PlanTerms,
    QuotaTerms,
    UsageTotals,
)
from services.proration import Window
from tallyflow.core.sqlfiles import sql

ZERO = Decimal(0)


def prepare_run_reads(conn: sa.Connection) -> None:
    """Settings of this transaction for an invoice run's reads (the run's and its workers').

    NOTE: the usage aggregation hashes one group per subscription and metric; the default
    4MB work_mem makes it sort on disk. The batch reads pass their tenants as an array,
    which a generic plan cannot size (see the statement file). Both local to the transaction.
    """
    conn.execute(sql("invoicing/set_invoice_run_work_mem"))
    conn.execute(sql("invoicing/set_invoice_run_custom_plans"))


def load_catalog(conn: sa.Connection) -> dict[int, PlanTerms]:
    """Every plan with its parsed pricing (a stored pricing that does not parse is an error)."""
    plans: dict[int, dict[str, Any]] = {}
    quotas: dict[int, list[QuotaTerms]] = defaultdict(list)
    for r in conn.execute(sql("invoicing/select_billing_catalog")):
        plans.setdefault(
            r.plan_id,
            {
                "plan_id": r.plan_id,
                "code": r.plan_code,
                "name": r.plan_name,
                "currency": r.currency,
                "base_fee": r.base_fee,
                "minimum_commitment": r.minimum_commitment,
            },
        )
        if r.metric is not None:
            pricing = pricing_from_row(r.pricing_model, r.pricing)
            quotas[r.plan_id].append(
                QuotaTerms(
                    metric=r.metric,
                    aggregation=r.aggregation,
                    included=r.included,
                    pricing=pricing,
                    pricing_json=pricing.to_json(),
                )
            )
    return {
        plan_id: PlanTerms(**fields, quotas=tuple(quotas[plan_id]))
        for plan_id, fields in plans.items()
    }


class WindowRow(NamedTuple):
    """The part of one subscription inside the period (`invoicing/select_billing_windows`)."""

    subscription_id: int
    tenant_id: str
    plan_id: int
    window_start: dt.date
    window_end: dt.date


def select_windows(conn: sa.Connection, params: Mapping[str, Any]) -> list[WindowRow]:
    """Every subscription window of the period (all tenants or `tenant_ids`)."""
    return [
        WindowRow(*r) for r in conn.execute(sql("invoicing/select_billing_windows"), params).all()
    ]


def load_billable_windows(
    conn: sa.Connection,
    params: Mapping[str, Any],
    catalog: Mapping[int, PlanTerms],
    windows: Sequence[WindowRow] | None = None,
) -> dict[str, list[BillableWindow]]:
    """Three set-based reads, joined in memory by subscription id.

    windows: the subscription windows of `params`' tenants when the caller has read them
    already (`select_windows`); read here otherwise.
    """
    # NOTE: .all() fetches in one call; iterating a result fetches row by row (3x slower
    # for the hundreds of thousands of rows of a full run).
    usage: dict[int, dict[str, UsageTotals]] = defaultdict(dict)
    rows = conn.execute(sql("invoicing/select_billing_window_usage"), params).all()
    for subscription_id, metric, quantity_sum, event_count, quantity_max in rows:
        usage[subscription_id][metric] = UsageTotals(quantity_sum, event_count, quantity_max)
    del rows
    metric_values = _load_metric_values(conn, params)
    overrides: dict[int, dict[str, list[tuple[Decimal, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in conn.execute(sql("invoicing/select_billing_override_days"), params):
        overrides[r.subscription_id][r.metric].append((r.included, int(r.days)))
    by_tenant: dict[str, list[BillableWindow]] = defaultdict(list)
    for w in select_windows(conn, params) if windows is None else windows:
        by_tenant[w.tenant_id].append(
            BillableWindow(
                subscription_id=w.subscription_id,
                plan=catalog[w.plan_id],
                window=Window(w.window_start, w.window_end),
                usage=usage.get(w.subscription_id, {}),
                override_days={
                    metric: sorted(pairs) for metric, pairs in overrides[w.subscription_id].items()
                }
                if w.subscription_id in overrides
                else {},
                metrics=metric_values.window(w.tenant_id, w.window_start, w.window_end),
            )
        )
    return by_tenant


class _MetricValuesByWindow:
    """Billable metric values per (tenant, window), from metric_usage."""

    def __init__(self, codes: Mapping[str, bool]) -> None:
        self.codes = codes  # code -> grouped
        self.rows: dict[tuple[str, dt.date, dt.date], dict[str, MetricValues]] = {}

    def window(self, tenant_id: str, start: dt.date, end: dt.date) -> dict[str, MetricValues]:
        found = self.rows.get((tenant_id, start, end), {})
        return {code: found.get(code, MetricValues(grouped=g)) for code, g in self.codes.items()}


def _jsonb_group(group_key: str) -> dict[str, str | None]:
    """A group's values from its group_key text, keys in the order JSONB keeps them (by
    length, then bytes), as reading the row's group_values would give them."""
    values: dict[str, str | None] = orjson.loads(group_key)
    return dict(sorted(values.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode())))


def _load_metric_values(conn: sa.Connection, params: Mapping[str, Any]) -> _MetricValuesByWindow:
    codes = {
        r.code: bool(r.group_by)
        for r in conn.execute(sql("metrics/select_metrics"), {"codes": None})
    }
    out = _MetricValuesByWindow(codes)
    if not codes:
        return out
    # NOTE: a full run reads millions of rows (a row per window, metric and group): plain
    # tuples, one parse per distinct group_key, and each window's MetricValues built once.
    groups_by_key: dict[str, dict[str, str | None]] = {}
    totals: dict[tuple[str, dt.date, dt.date, str], Decimal] = {}
    groups: dict[tuple[str, dt.date, dt.date, str], list[tuple[Mapping[str, str | None], Decimal]]]
    groups = defaultdict(list)
    rows = conn.execute(sql("metrics/select_metric_window_usage"), params).all()
    for tenant_id, code, window_start, window_end, group_key, value in rows:
        key = (tenant_id, window_start, window_end, code)
        if group_key == "":
            totals[key] = value
            continue
        group = groups_by_key.get(group_key)
        if group is None:
            group = groups_by_key[group_key] = _jsonb_group(group_key)
        groups[key].append((group, value))
    del rows
    for key in totals.keys() | groups.keys():
        tenant_id, window_start, window_end, code = key
        out.rows.setdefault((tenant_id, window_start, window_end), {})[code] = MetricValues(
            total=totals.get(key, ZERO),
            groups=tuple(groups.get(key, ())),
            grouped=codes.get(code, False),
        )
    return out
