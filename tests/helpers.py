"""Small helpers shared by tests: writing usage files and reading results back."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tallyflow.core.secrets import SecretBox

# The suite's TALLYFLOW_SECRET_KEY (the `settings` fixture sets it): webhook secrets are
# stored sealed with it. A constant, so a test reading the database can open them.
TEST_SECRET_KEY = "UjDwm5H5PvOqw9S5nHPJyHGFG0OY6aBpX--oexJ1xjc="
TEST_BOX = SecretBox([TEST_SECRET_KEY])


def ev(
    event_id: str,
    tenant: str = "acme",
    metric: str = "api.calls",
    quantity: Any = "1",
    occurred_at: Any = "2026-10-05T10:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "tenant_id": tenant,
        "metric": metric,
        "quantity": quantity,
        "occurred_at": occurred_at,
        **extra,
    }


def write_jsonl(path: Path, events: list[dict[str, Any] | str], *, gz: bool = False) -> Path:
    text = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_csv(path: Path, events: list[dict[str, Any]], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["event_id", "tenant_id", "metric", "quantity", "occurred_at"]
    rows = [",".join(fields)]
    for e in events:
        import io

        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([e.get(f, "") for f in fields])
        rows.append(buf.getvalue())
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rows(engine: Engine, query: str) -> list[tuple[Any, ...]]:
    """The rows of one read-only query, as plain tuples."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(query)).all()]


def usage(engine: Engine) -> dict[tuple[str, str, str], tuple[Decimal, int, Decimal]]:
    """usage_daily as {(tenant, metric, day): (sum, count, max)}."""
    found = rows(
        engine,
        "SELECT tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max"
        " FROM usage_daily ORDER BY 1, 2, 3",
    )
    return {(r[0], r[1], r[2].isoformat()): (r[3], r[4], r[5]) for r in found}


def usage_full(engine: Engine) -> list[tuple[Any, ...]]:
    """Every column of usage_daily, ordered (to compare reruns exactly)."""
    return rows(engine, "SELECT * FROM usage_daily ORDER BY tenant_id, metric, usage_date")


def rejected(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(engine, "SELECT source, line_no, reason FROM rejected_rows ORDER BY 1, 2")


def oracle_usage(path: Path) -> dict[tuple[str, str, str], tuple[Decimal, int]]:
    """The generator's oracle as {(tenant, metric, day): (sum, count)}."""
    frame = pl.read_parquet(path)
    return {
        (r["tenant_id"], r["metric"], r["usage_date"].isoformat()): (
            Decimal(r["quantity_sum"]),
            r["event_count"],
        )
        for r in frame.iter_rows(named=True)
    }
