"""The SQL parser (sql/parse_raw_events.sql) against the reference parsers in
models/events.py: the SQL handles the common spellings itself, so for every text both
must give the same answer; and the reference quantity parser against Python's Decimal."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from models.events import (
    EARLIEST_OCCURRED_AT,
    MAX_QUANTITY_MICROS,
    NEGATIVE,
    NUMBER,
    RAW_EVENT_SCHEMA,
    STRING,
    occurred_at_micros_exact,
    parse_raw_events,
    quantity_micros_exact,
)

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

digits = st.text("0123456789", min_size=0, max_size=16)
quantity_texts = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", digits, digits),
    st.builds(lambda a: a, digits),
    st.builds(
        lambda s, a, b, e: f"{s}{a}.{b}e{e}",
        st.sampled_from(["", "-", "+"]),
        digits,
        digits,
        st.integers(-30, 30),
    ),
    st.text(" 0123456789.eE+-", max_size=12),
)
two = st.integers(0, 99).map(lambda n: f"{n:02d}")
timestamp_texts = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, frac, zone: f"{y}-{mo}-{d}T{h}:{mi}:{s}{frac}{zone}",
        st.integers(1990, 2100),
        two,
        two,
        two,
        two,
        two,
        st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
        st.sampled_from(["Z", "+05:45", "-08:00", "+24:00", "+23:60", "", "z", "+0545"]),
    ),
    st.integers(0, 10**12).map(str),
    st.text("0123456789-:TZ+. ", max_size=26),
)


def raw_frame(quantities: list[tuple[str, str]], timestamps: list[tuple[str, str]]) -> pl.DataFrame:
    n = max(len(quantities), len(timestamps))
    q = quantities + [("1", NUMBER)] * (n - len(quantities))
    t = timestamps + [("2026-11-01T00:00:00Z", STRING)] * (n - len(timestamps))
    return pl.DataFrame(
        [
            {
                "row": i + 1,
                "is_object": True,
                "event_id": f"e{i}",
                "event_id_type": STRING,
                "tenant_id": "acme",
                "tenant_id_type": STRING,
                "metric": "api.calls",
                "metric_type": STRING,
                "quantity": q[i][0],
                "quantity_type": q[i][1],
                "occurred_at": t[i][0],
                "occurred_at_type": t[i][1],
                "properties": None,
                "properties_type": None,
            }
            for i in range(n)
        ],
        schema=RAW_EVENT_SCHEMA,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(quantity_texts, st.sampled_from([STRING, NUMBER])), min_size=1))
def test_sql_quantities_equal_the_reference(quantities: list[tuple[str, str]]) -> None:
    parsed = parse_raw_events(raw_frame(quantities, []), NOW)
    got_rows = parsed.select("quantity_finite", "quantity_negative", "quantity_micros").rows()
    for (text, kind), got in zip(quantities, got_rows, strict=True):
        expected = quantity_micros_exact(text, kind)
        if expected is None:
            assert got == (False, None, None), text
        elif expected == NEGATIVE:
            assert got == (True, True, None), text
        else:
            assert got == (True, False, expected), text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(timestamp_texts, st.sampled_from([STRING, NUMBER])), min_size=1))
def test_sql_timestamps_equal_the_reference(timestamps: list[tuple[str, str]]) -> None:
    parsed = parse_raw_events(raw_frame([], timestamps), NOW)
    earliest = int((EARLIEST_OCCURRED_AT - EPOCH).total_seconds()) * 1_000_000
    for (text, kind), occurred in zip(
        timestamps, parsed.get_column("occurred_at").to_list(), strict=True
    ):
        expected = occurred_at_micros_exact(text, kind)
        if expected is not None and expected >= earliest:
            assert occurred is not None, text
            assert occurred == EPOCH + dt.timedelta(microseconds=expected), text
        else:
            assert occurred is None, text


@settings(max_examples=300, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**13, places=12))
def test_reference_quantity_is_decimal_half_even(value: Decimal) -> None:
    expected = int((value * 10**6).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    expected = min(expected, MAX_QUANTITY_MICROS + 1)
    for text in (f"{value:f}", f"{value:e}".replace("+", "")):
        assert quantity_micros_exact(text, NUMBER) == expected, text


def test_reference_quantity_edges() -> None:
    assert quantity_micros_exact("0.0000005", STRING) == 0  # half to even (0)
    assert quantity_micros_exact("0.0000015", STRING) == 2  # half to even (2)
    assert quantity_micros_exact("0.00000050000000000000001", STRING) == 1
    assert quantity_micros_exact("1e-1000000", NUMBER) is None  # exponent beyond 6 digits
    assert quantity_micros_exact("1e-999999", NUMBER) == 0
    assert quantity_micros_exact("1e999999", NUMBER) == MAX_QUANTITY_MICROS + 1
    assert quantity_micros_exact("-0.000", STRING) == 0
    assert quantity_micros_exact("-0.0000001", STRING) == NEGATIVE
    assert quantity_micros_exact(" 7 ", STRING) == 7_000_000
    assert quantity_micros_exact(".", STRING) is None
    assert quantity_micros_exact("1", "other") is None
    assert quantity_micros_exact("1" + "0" * 5000, NUMBER) == MAX_QUANTITY_MICROS + 1
