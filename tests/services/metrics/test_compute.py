"""The billable metric computation (DuckDB over real lake files) against hand-computed
values, one edge case per test, and against the plain-Python reference on random events."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.metrics import MetricDefinition
from models.period import BillingPeriod
from services.metrics.compute import SubscriptionWindow, UsageRow, compute_metric_usage
from services.metrics.reference import reference_metric_usage
from tests.services.metrics.lake_helpers import lake_event, write_lake

OCT = BillingPeriod.of(dt.date(2026, 10, 1))
SEP = BillingPeriod.of(dt.date(2026, 9, 1))


def metric(**fields: Any) -> MetricDefinition:
    return MetricDefinition.parse({"code": "x", "event_metric": "m", **fields})


def values(
    tmp_path: Path,
    events: list[dict[str, Any]],
    definition: MetricDefinition,
    periods: list[BillingPeriod] | None = None,
    windows: list[SubscriptionWindow] = [],  # noqa: B006 - never mutated
) -> tuple[dict[tuple[Any, ...], D], int]:
    """{(tenant, window_start, window_end, group or None): value}, unreadable count."""
    files = write_lake(tmp_path / "lake", events) if events else []
    out = compute_metric_usage(files, [definition], periods or [OCT], windows)
    found = {(r.tenant_id, r.window_start, r.window_end, r.group): r.value for r in out.rows}
    return found, out.unreadable[definition.code]


MONTH = ("acme", dt.date(2026, 10, 1), dt.date(2026, 11, 1))


def total(found: dict[tuple[Any, ...], D], where: tuple[Any, ...] = MONTH) -> D | None:
    return found.get((*where, None))


def test_no_events_no_rows(tmp_path: Path) -> None:
    # no events at all, and events of another metric only: nothing to bill (0)
    assert values(tmp_path, [], metric(aggregation="sum")) == ({}, 0)
    other = [lake_event("e1", "2026-10-02T00:00:00Z", metric="other")]
    assert values(tmp_path, other, metric(aggregation="sum")) == ({}, 0)


def test_sum_count_max_over_month_and_subscription_window(tmp_path: Path) -> None:
    events = [
        lake_event("e1", "2026-10-01T00:00:00Z", quantity="2.5"),
        lake_event("e2", "2026-10-10T00:00:00Z", quantity="4"),
        lake_event("e3", "2026-10-31T23:59:59.999999Z", quantity="1.000001"),
        lake_event("e4", "2026-11-01T00:00:00Z", quantity="100"),  # next period
    ]
    window = SubscriptionWindow("acme", OCT.start, dt.date(2026, 10, 10), OCT.end)
    sub = ("acme", dt.date(2026, 10, 10), OCT.end)
    for agg, month, part in [
        ("sum", D("7.500001"), D("5.000001")),
        ("count", D(3), D(2)),
        ("max", D(4), D(4)),
    ]:
        found, unreadable = values(
            tmp_path / agg, events, metric(aggregation=agg), windows=[window]
        )
        assert (total(found), total(found, sub), unreadable) == (month, part, 0), agg


def test_unique_count_one_and_one_point_zero_are_one_value(tmp_path: Path) -> None:
    events = [
        lake_event("e1", "2026-10-01T00:00:00Z", props={"u": "1"}),
        lake_event("e2", "2026-10-02T00:00:00Z", props='{"u": 1}'),
        lake_event("e3", "2026-10-03T00:00:00Z", props='{"u": 1.0}'),
        lake_event("e4", "2026-10-04T00:00:00Z", props='{"u": 1.50}'),  # "1.5"
        lake_event("e5", "2026-10-05T00:00:00Z", props={"u": "1.5"}),
        lake_event("e6", "2026-10-06T00:00:00Z", props={"u": "1.0"}),  # a string: its text
        lake_event("e7", "2026-10-07T00:00:00Z", props={"u": True}),
        lake_event("e8", "2026-10-08T00:00:00Z", props={"u": None}),  # skipped
        lake_event("e9", "2026-10-09T00:00:00Z", props={"u": [1]}),  # skipped
        lake_event("e10", "2026-10-10T00:00:00Z", props={"other": "x"}),  # missing: skipped
        lake_event("e11", "2026-10-11T00:00:00Z"),  # no properties: skipped
    ]
    found, unreadable = values(
        tmp_path, events, metric(aggregation="unique_count", value="properties.u")
    )
    # {"1", "1.5", "1.0", "true"}
    assert total(found) == D(4)
    assert unreadable == 4


def test_unique_count_is_not_a_sum_of_days(tmp_path: Path) -> None:
    events = [
        lake_event(f"e{i}", f"2026-10-{day:02d}T12:00:00Z", props={"user": user})
        for i, (day, user) in enumerate([(1, "ann"), (1, "bob"), (2, "ann"), (3, "ann")])
    ]
    found, _ = values(tmp_path, events, metric(aggregation="unique_count", value="properties.user"))
    assert total(found) == D(2)


def test_latest_by_occurred_at_then_greatest_event_id(tmp_path: Path) -> None:
    events = [
        lake_event("a", "2026-10-05T00:00:00Z", props={"seats": "7"}),
        lake_event("z", "2026-10-03T00:00:00Z", props={"seats": "9"}),  # earlier
        lake_event("b", "2026-10-05T00:00:00Z", props={"seats": "5"}),  # same instant, b > a
        lake_event("c", "2026-10-06T00:00:00Z", props={"seats": "many"}),  # unreadable
    ]
    found, unreadable = values(
        tmp_path, events, metric(aggregation="latest", value="properties.seats")
    )
    assert total(found) == D(5)
    assert unreadable == 1


def test_latest_total_is_the_sum_of_groups(tmp_path: Path) -> None:
    events = [
        lake_event("1", "2026-10-01T00:00:00Z", props={"team": "red", "seats": 3}),
        lake_event("2", "2026-10-02T00:00:00Z", props={"team": "blue", "seats": 4}),
        lake_event("3", "2026-10-03T00:00:00Z", props={"team": "red", "seats": 2}),
    ]
    found, _ = values(
        tmp_path, events, metric(aggregation="latest", value="properties.seats", group_by=["team"])
    )
    assert found[(*MONTH, ("red",))] == D(2)
    assert found[(*MONTH, ("blue",))] == D(4)
    assert total(found) == D(6)  # not 2 (the last event overall)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ("100", D(20)),  # rank 20 of 20: the maximum
        ("95", D(19)),  # ceil(19.0) = 19
        ("50", D(10)),
        ("0.000001", D(1)),  # rank ceil(0.0000002) = 1
        ("96", D(20)),  # ceil(19.2) = 20
    ],
)
def test_percentile_nearest_rank(tmp_path: Path, p: str, expected: D) -> None:
    events = [
        lake_event(f"e{v}", f"2026-10-{v:02d}T00:00:00Z", props={"ms": str(v)})
        for v in [5, 1, 20, 3, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    ]
    found, _ = values(
        tmp_path, events, metric(aggregation="percentile", percentile=p, value="properties.ms")
    )
    assert total(found) == expected


def test_time_weighted_sum_carries_a_level_set_before_the_period(tmp_path: Path) -> None:
    events = [
        # 10 GB from mid-September: October holds 10 GB for 31 days = 7440 GB-hours
        lake_event("s1", "2026-09-15T00:00:00Z", props={"gb": "10"}),
    ]
    found, _ = values(
        tmp_path, events, metric(aggregation="time_weighted_sum", value="properties.gb")
    )
    assert total(found) == D(7440)
    found, _ = values(
        tmp_path / "day",
        events,
        metric(aggregation="time_weighted_sum", value="properties.gb", time_unit="day"),
    )
    assert total(found) == D(310)


def test_time_weighted_sum_ties_at_one_instant_and_level_changes(tmp_path: Path) -> None:
    events = [
        lake_event("a", "2026-10-01T00:00:00Z", props={"gb": "100"}),
        lake_event("b", "2026-10-01T00:00:00Z", props={"gb": "2"}),  # b > a: level 2
        lake_event("c", "2026-10-02T00:00:00Z", props={"gb": "0"}),  # 24 h at 2 = 48
        lake_event("d", "2026-10-31T00:00:00Z", props={"gb": "1"}),  # 24 h at 1 = 24
    ]
    found, _ = values(
        tmp_path, events, metric(aggregation="time_weighted_sum", value="properties.gb")
    )
    assert total(found) == D(72)
    # a subscription from Oct 2: only the 24 h at 1
    window = SubscriptionWindow("acme", OCT.start, dt.date(2026, 10, 2), OCT.end)
    found, _ = values(
        tmp_path / "w",
        events,
        metric(aggregation="time_weighted_sum", value="properties.gb"),
        windows=[window],
    )
    assert total(found, ("acme", dt.date(2026, 10, 2), OCT.end)) == D(24)


def test_time_weighted_sum_rounds_half_even_once_at_the_end(tmp_path: Path) -> None:
    # level 0.000001 for 30 min = 0.0000005 h -> 0 (half to even); then
    # 0.000003 from 23:00 on Oct 31 for 1 h = 0.000003 h: 0.0000005 + 0.000003 = 0.0000035
    # -> 0.000004 (rounded once, at the end: not 0 + 0.000003)
    events = [
        lake_event("a", "2026-10-31T22:30:00Z", props={"gb": "0.000001"}),
        lake_event("b", "2026-10-31T23:00:00Z", props={"gb": "0.000003"}),
    ]
    found, _ = values(
        tmp_path, events, metric(aggregation="time_weighted_sum", value="properties.gb")
    )
    assert total(found) == D("0.000004")
    lone = [lake_event("a", "2026-10-31T23:30:00Z", props={"gb": "0.000001"})]
    found, _ = values(
        tmp_path / "lone", lone, metric(aggregation="time_weighted_sum", value="properties.gb")
    )
    assert total(found) == D("0")  # 0.0000005 -> 0 (even)


def test_filter_on_a_non_string_property_does_not_match(tmp_path: Path) -> None:
    events = [
        lake_event("e1", "2026-10-01T00:00:00Z", quantity="5", props={"region": "eu"}),
        lake_event("e2", "2026-10-01T00:00:00Z", quantity="7", props={"region": 1}),
        lake_event("e3", "2026-10-01T00:00:00Z", quantity="11", props='{"region": "1"}'),
        lake_event("e4", "2026-10-01T00:00:00Z", quantity="13"),  # no region
    ]
    found, _ = values(tmp_path, events, metric(aggregation="sum", filters={"region": ["eu", "1"]}))
    assert total(found) == D(16)  # e1 + e3; the number 1 is not the string "1"


def test_group_with_a_missing_key_is_null(tmp_path: Path) -> None:
    events = [
        lake_event(
            "e1", "2026-10-01T00:00:00Z", quantity="1", props={"model": "a", "region": "eu"}
        ),
        lake_event("e2", "2026-10-01T00:00:00Z", quantity="2", props={"model": "a"}),
        lake_event("e3", "2026-10-01T00:00:00Z", quantity="4", props={"model": 5, "region": "eu"}),
    ]
    found, _ = values(tmp_path, events, metric(aggregation="sum", group_by=["model", "region"]))
    assert found[(*MONTH, ("a", "eu"))] == D(1)
    assert found[(*MONTH, ("a", None))] == D(2)
    assert found[(*MONTH, (None, "eu"))] == D(4)  # a number is not a group value
    assert total(found) == D(7)


def test_property_values_parse_like_quantity(tmp_path: Path) -> None:
    events = [
        lake_event("e1", "2026-10-01T00:00:00Z", props={"v": "0.0000005"}),  # -> 0 (even)
        lake_event("e2", "2026-10-01T00:00:00Z", props={"v": "0.0000015"}),  # -> 0.000002
        lake_event("e3", "2026-10-01T00:00:00Z", props='{"v": 1e3}'),  # 1000
        lake_event("e4", "2026-10-01T00:00:00Z", props={"v": "-1"}),  # negative: skipped
        lake_event("e5", "2026-10-01T00:00:00Z", props={"v": "1e13"}),  # > 1e12: skipped
        lake_event("e6", "2026-10-01T00:00:00Z", props={"v": "abc"}),  # skipped
        lake_event("e7", "2026-10-01T00:00:00Z", props={"v": " 2.5 "}),  # 2.5
    ]
    found, unreadable = values(tmp_path, events, metric(aggregation="sum", value="properties.v"))
    assert total(found) == D("1002.500002")
    assert unreadable == 3


def test_count_ignores_the_value(tmp_path: Path) -> None:
    events = [lake_event("e1", "2026-10-01T00:00:00Z", props={"v": "abc"})]
    found, unreadable = values(tmp_path, events, metric(aggregation="count", value="properties.v"))
    assert (total(found), unreadable) == (D(1), 0)


# --- the property: DuckDB == the plain-Python reference ---------------------------------

PROPERTY_VALUES = st.one_of(
    st.sampled_from(["a", "b", "1", "1.0", "2.5", "-3", "x y"]),
    st.sampled_from([1, 2, 0, 7, 1.5, 1.0, True, False, None, [1], {"k": 1}]),
    st.decimals(min_value=0, max_value=1000, places=7).map(str),
)
INSTANTS = st.sampled_from(
    [
        "2026-08-31T23:00:00Z",
        "2026-09-15T06:00:00Z",
        "2026-09-30T23:59:59.999999Z",
        "2026-10-01T00:00:00Z",
        "2026-10-01T00:00:00.000001Z",
        "2026-10-14T12:30:00Z",
        "2026-10-31T23:59:59Z",
        "2026-11-01T00:00:00Z",
        "2026-11-17T08:00:00Z",
    ]
)


@st.composite
def lake_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 25))
    out = []
    for i in range(n):
        props = draw(
            st.dictionaries(st.sampled_from(["v", "g", "h", "r"]), PROPERTY_VALUES, max_size=4)
        )
        out.append(
            lake_event(
                f"{draw(st.sampled_from(['a', 'b', 'B', 'é']))}{i}",
                draw(INSTANTS),
                tenant=draw(st.sampled_from(["t1", "t2"])),
                metric=draw(st.sampled_from(["m", "m", "other"])),
                quantity=str(draw(st.decimals(min_value=0, max_value=10**6, places=6))),
                props=json.dumps(props) if props or draw(st.booleans()) else None,
            )
        )
    return out


DEFINITIONS = st.builds(
    lambda agg, value, p, unit, filters, group_by: metric(
        aggregation=agg,
        value="properties.v" if agg == "unique_count" else value,
        **({"percentile": p} if agg == "percentile" else {}),
        **({"time_unit": unit} if agg == "time_weighted_sum" else {}),
        **({"filters": filters} if filters else {}),
        group_by=group_by,
    ),
    st.sampled_from(
        ["sum", "count", "max", "unique_count", "latest", "time_weighted_sum", "percentile"]
    ),
    st.sampled_from(["quantity", "properties.v"]),
    st.sampled_from(["100", "50", "95", "0.5", "33.333333"]),
    st.sampled_from(["hour", "day"]),
    st.sampled_from([None, {"r": ["a", "1"]}]),
    st.sampled_from([[], ["g"], ["g", "h"]]),
)


def _key(row: UsageRow) -> tuple[Any, ...]:
    return (row.tenant_id, row.window_start, row.window_end, str(row.group), row.value)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=lake_events(), definition=DEFINITIONS, with_window=st.booleans())
def test_duckdb_matches_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[dict[str, Any]],
    definition: MetricDefinition,
    with_window: bool,
) -> None:
    periods = [SEP, OCT]
    windows = (
        [SubscriptionWindow("t1", OCT.start, dt.date(2026, 10, 14), dt.date(2026, 10, 20))]
        if with_window
        else []
    )
    root = tmp_path_factory.mktemp("lake")
    files = write_lake(root, events) if events else []
    computed = compute_metric_usage(files, [definition], periods, windows)
    expected, unreadable = reference_metric_usage(events, definition, periods, windows)
    assert sorted(map(_key, computed.rows)) == sorted(map(_key, expected))
    assert computed.unreadable[definition.code] == unreadable
