"""Property: any event the validator accepts round-trips through the lake and aggregates
to its exact Decimal quantity (half-even to 6 places), whatever its decimal text."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.events import RAW_EVENT_SCHEMA, validate_raw_events
from services.ingest.aggregate import aggregate_usage_days
from services.ingest.lake import absolute, write_lake_files

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)

digits = st.text(alphabet="0123456789", min_size=0, max_size=22)
quantity_text = st.builds(
    lambda i, f, e: (i or "0") + (f".{f}" if f else "") + (f"e{e}" if e is not None else ""),
    st.text(alphabet="0123456789", min_size=0, max_size=13),
    digits,
    st.one_of(st.none(), st.integers(min_value=-30, max_value=12)),
)
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2026, 11, 23),
    timezones=st.just(dt.UTC),
)


def expected_micros(text: str) -> int | None:
    value = Decimal(text)
    if value > Decimal("1e12") + Decimal("0.0000005"):
        return None
    rounded = value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    return int(rounded.scaleb(6)) if rounded <= Decimal("1e12") else None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(quantity_text, instants), min_size=1, max_size=30))
def test_accepted_events_aggregate_exactly(events: list[tuple[str, dt.datetime]]) -> None:
    raw = pl.DataFrame(
        [
            {
                "row": i + 1,
                "is_object": True,
                "event_id": f"e{i}",
                "event_id_type": "string",
                "tenant_id": "t",
                "tenant_id_type": "string",
                "metric": "m",
                "metric_type": "string",
                "quantity": q,
                "quantity_type": "string",
                "occurred_at": at.isoformat(),
                "occurred_at_type": "string",
                "properties": None,
                "properties_type": None,
            }
            for i, (q, at) in enumerate(events)
        ],
        schema=RAW_EVENT_SCHEMA,
    )
    result = validate_raw_events(raw, NOW)
    want: dict[dt.date, int] = {}
    for q, at in events:
        micros = expected_micros(q)
        if micros is not None:
            want[at.date()] = want.get(at.date(), 0) + micros
    assert result.accepted.height == sum(1 for q, _ in events if expected_micros(q) is not None)
    assert set(result.rejected.get_column("reason")) <= {"quantity_too_large"}

    with TemporaryDirectory() as folder:
        lake = Path(folder)
        files = write_lake_files(
            lake, result.accepted.with_columns(pl.lit("test").alias("source")), str(uuid.uuid4())
        )
        daily = aggregate_usage_days(absolute(lake, files))
    got = {r["usage_date"]: r["quantity_sum_micros"] for r in daily.iter_rows(named=True)}
    assert got == want
    assert {d: Decimal(v).scaleb(-6) for d, v in got.items()} == {
        d: Decimal(v).scaleb(-6) for d, v in want.items()
    }
