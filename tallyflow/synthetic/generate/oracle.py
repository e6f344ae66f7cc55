"""The oracle: the exact expected usage_daily rows of the accepted events."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

from tallyflow.synthetic.generate.render import _decimal_text, _tables
from tallyflow.synthetic.generate.spec import _CODE, ACCEPTED_KINDS, UsageSpec


def compute_oracle(plan_or_frame: pl.DataFrame, spec: UsageSpec | None = None) -> pl.DataFrame:
    """Expected usage_daily rows of the accepted events, exact.

    Takes a frame from `generate_events_frame` (or, with its spec, an internal plan);
    never the ingest code. Sums run on Int128 micro-units, so no total overflows; the
    quantities are decimal text with 6 places.
    """
    if "kind_code" in plan_or_frame.columns:
        assert spec is not None
        t = _tables(spec, "jsonl")
        accepted = plan_or_frame.filter(
            pl.col("kind_code").is_in([_CODE[k] for k in ACCEPTED_KINDS])
        ).select(
            tenant_id=pl.lit(t.tenants).gather(pl.col("tenant_idx")),
            metric=pl.lit(t.metrics).gather(pl.col("metric_idx")),
            usage_date=pl.from_epoch("instant_us", "us").dt.date(),
            occurred_at_utc=pl.from_epoch("instant_us", "us").dt.replace_time_zone("UTC"),
            quantity_micros="quantity_micros",
        )
    else:
        accepted = plan_or_frame.filter(pl.col("kind").is_in(ACCEPTED_KINDS))
    grouped = (
        accepted.group_by("tenant_id", "metric", "usage_date")
        .agg(
            sum_micros=pl.col("quantity_micros").cast(pl.Int128).sum(),
            event_count=pl.len().cast(pl.Int64),
            max_micros=pl.col("quantity_micros").max().cast(pl.Int128),
            first_occurred_at=pl.col("occurred_at_utc").min(),
            last_occurred_at=pl.col("occurred_at_utc").max(),
        )
        .sort("tenant_id", "metric", "usage_date")
    )
    return grouped.select(
        "tenant_id",
        "metric",
        "usage_date",
        quantity_sum=_decimal_text(pl.col("sum_micros"), fixed=True),
        event_count="event_count",
        quantity_max=_decimal_text(pl.col("max_micros"), fixed=True),
        first_occurred_at="first_occurred_at",
        last_occurred_at="last_occurred_at",
    )


def write_oracle(oracle: pl.DataFrame, path: Path) -> None:
    """Parquet when the name ends in .parquet, else CSV (decimal text either way)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        oracle.write_parquet(path)
    else:
        oracle.write_csv(path)


def read_oracle(path: Path) -> pl.DataFrame:
    """An oracle file back as a frame (quantities stay decimal text)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(
        path,
        schema_overrides={
            "tenant_id": pl.String,
            "metric": pl.String,
            "quantity_sum": pl.String,
            "quantity_max": pl.String,
        },
    ).with_columns(
        pl.col("usage_date").str.to_date(),
        pl.col("first_occurred_at", "last_occurred_at").str.to_datetime(time_zone="UTC"),
    )


def oracle_sums(oracle: pl.DataFrame) -> dict[tuple[str, str, date], Decimal]:
    """{(tenant_id, metric, usage_date): exact quantity_sum} of an oracle frame."""
    rows = oracle.select("tenant_id", "metric", "usage_date", "quantity_sum").iter_rows()
    return {(t, m, d): Decimal(q) for t, m, d, q in rows}
