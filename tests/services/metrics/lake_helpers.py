"""Writing small lake files (the real Parquet layout) for the billable metric tests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl

from services.ingest.lake import write_lake_files


def lake_event(
    event_id: str,
    at: str,
    *,
    tenant: str = "acme",
    metric: str = "m",
    quantity: str = "1",
    props: dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """One lake row; `quantity` as decimal text, `props` as a dict or raw JSON text."""
    from decimal import Decimal

    occurred = dt.datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(dt.UTC)
    return {
        "tenant_id": tenant,
        "event_id": event_id,
        "metric": metric,
        "quantity_micros": int(Decimal(quantity).scaleb(6)),
        "occurred_at": occurred,
        "usage_date": occurred.date(),
        "properties": props if isinstance(props, str) or props is None else json.dumps(props),
        "source": "test",
    }


def lake_frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    """Lake rows (as `lake_event` gives them) as a frame of the lake's columns."""
    return pl.DataFrame(
        events,
        schema={
            "tenant_id": pl.String,
            "event_id": pl.String,
            "metric": pl.String,
            "quantity_micros": pl.Int64,
            "occurred_at": pl.Datetime("us", "UTC"),
            "usage_date": pl.Date,
            "properties": pl.String,
            "source": pl.String,
        },
    )


def write_lake(
    root: Path, events: list[dict[str, Any]], name: str = "run"
) -> list[tuple[str, dt.date]]:
    """Write the events as lake files (one per usage day); (absolute path, day) of each."""
    written = write_lake_files(root, lake_frame(events), name)
    return [(str(root / f.path), f.usage_date) for f in written]
