"""The synthetic usage generator: determinism, every bad kind, readable formats, exact oracle.

The checks re-derive everything from the written text with the standard library (json,
Decimal, datetime, re), independently of both the generator's internals and the ingest.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from tallyflow.cli.app import app
from tallyflow.synthetic.generate import (
    BAD_KINDS,
    GenerateError,
    UsageSpec,
    generate_events_frame,
    generate_usage,
    oracle_sums,
    read_oracle,
)

MONTH = "2026-10"
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
METRIC_RE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
REQUIRED = ("event_id", "tenant_id", "metric", "quantity", "occurred_at")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.decode().splitlines()


def _timestamp(value: Any) -> datetime | None:
    """Reference parse: epoch seconds or RFC 3339; None when unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _reference_reason(obj: Any) -> str:
    """What the contract says about one parsed JSON line (a small, slow reference)."""
    if not isinstance(obj, dict):
        return "malformed_row"
    if any(obj.get(f) is None for f in REQUIRED):
        return "missing_field"
    event_id = obj["event_id"]
    if not 1 <= len(event_id) <= 128 or not event_id.strip():
        return "invalid_event_id"
    if not TENANT_RE.match(obj["tenant_id"]):
        return "invalid_tenant_id"
    if not METRIC_RE.match(obj["metric"]):
        return "invalid_metric"
    try:
        if isinstance(obj["quantity"], bool):
            raise InvalidOperation
        quantity = Decimal(str(obj["quantity"]))
        if not quantity.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        return "invalid_quantity"
    if quantity < 0:
        return "negative_quantity"
    if quantity > Decimal(10) ** 12:
        return "quantity_too_large"
    stamp = _timestamp(obj["occurred_at"])
    if stamp is None:
        return "invalid_timestamp"
    if stamp.tzinfo is None:
        return "naive_timestamp"
    if stamp > NOW:
        return "future_timestamp"
    return "ok"


def _spec(**overrides: Any) -> UsageSpec:
    base: dict[str, Any] = {"month": MONTH, "tenants": 12, "events": 3000, "seed": 11}
    return UsageSpec(**(base | overrides))


# -- determinism ---------------------------------------------------------------------


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    spec = _spec(duplicates=0.02, conflicts=0.02, late=0.05, bad=0.1)
    one = generate_usage(tmp_path / "a", spec, gzip=True)
    two = generate_usage(tmp_path / "b", spec, gzip=True)
    other = generate_usage(tmp_path / "c", _spec(seed=12, bad=0.1), gzip=True)
    assert [Path(f).name for f in one.files] == [Path(f).name for f in two.files]
    assert [_sha(Path(f)) for f in one.files] == [_sha(Path(f)) for f in two.files]
    assert one.rows_by_kind == two.rows_by_kind
    assert [_sha(Path(f)) for f in one.files] != [_sha(Path(f)) for f in other.files]


def test_frame_matches_files_and_is_deterministic(tmp_path: Path) -> None:
    spec = _spec(bad=0.05, duplicates=0.01)
    frame = generate_events_frame(spec)
    assert frame.equals(generate_events_frame(spec))
    summary = generate_usage(tmp_path, spec)
    written = [line for f in summary.files for line in _lines(Path(f))]
    assert written == frame["line"].to_list()


# -- kinds ---------------------------------------------------------------------------


def test_every_bad_kind_breaks_exactly_its_rule(tmp_path: Path) -> None:
    spec = _spec(events=4000, bad=0.3, duplicates=0.02, conflicts=0.02, late=0.03)
    summary = generate_usage(tmp_path, spec)
    frame = generate_events_frame(spec)
    for kind in BAD_KINDS:
        assert summary.rows_by_kind[kind] > 0, kind
    expected = frame["kind"].replace(
        {"clean": "ok", "late": "ok", "duplicate": "ok", "conflicting_duplicate": "ok"}
    )
    lines = [line for f in summary.files for line in _lines(Path(f))]
    got = []
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        got.append(_reference_reason(obj))
    mismatches = [(e, g, ln) for e, g, ln in zip(expected, got, lines, strict=True) if e != g]
    assert mismatches == []
    assert summary.rows == len(lines) == spec.events
    assert summary.accepted + summary.duplicates + summary.rejected == summary.rows


def test_duplicates_follow_their_original_and_conflicts_differ(tmp_path: Path) -> None:
    spec = _spec(events=3000, duplicates=0.05, conflicts=0.05)
    summary = generate_usage(tmp_path, spec, files_by="rows", rows_per_file=700)
    first_seen: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = conflicts = 0
    for path in sorted(summary.files):  # the ingest reads files in name order
        for line in _lines(Path(path)):
            obj = json.loads(line)
            key = (obj["tenant_id"], obj["event_id"])
            if key not in first_seen:
                first_seen[key] = obj
                continue
            original = first_seen[key]
            same = all(original[f] == obj[f] for f in ("metric", "quantity", "occurred_at"))
            duplicates += same
            conflicts += not same
    assert duplicates == summary.duplicates == 150
    assert conflicts == summary.rejected_by_reason["conflicting_duplicate"] == 150
    assert summary.accepted == len(first_seen) == 2700


def test_late_events_are_in_a_later_file_for_earlier_days(tmp_path: Path) -> None:
    summary = generate_usage(tmp_path, _spec(late=0.1))
    assert len(summary.late_files) == 1
    late = Path(summary.late_files[0])
    assert late.name == "usage-2026-11-01-late.jsonl"
    assert sorted(summary.files)[-1] == str(late)
    days = {
        _timestamp(json.loads(line)["occurred_at"]).astimezone(UTC).date()  # type: ignore[union-attr]
        for line in _lines(late)
    }
    assert len(_lines(late)) == summary.rows_by_kind["late"] == 300
    assert max(days) < date(2026, 10, 17)


def test_timestamps_mix_zulu_offsets_across_midnight_and_epoch(tmp_path: Path) -> None:
    frame = generate_events_frame(_spec(events=5000))
    stamps = frame["occurred_at"].to_list()
    epoch = [s for s in stamps if s.isdigit()]
    zulu = [s for s in stamps if s.endswith("Z")]
    offset = [s for s in stamps if re.search(r"[+-]\d\d:\d\d$", s)]
    assert epoch and zulu and offset
    crossing = [
        s
        for s in offset
        if datetime.fromisoformat(s).date() != datetime.fromisoformat(s).astimezone(UTC).date()
    ]
    assert len(crossing) > 100
    quantities = frame["quantity"].to_list()
    assert any("." in q and len(q.split(".")[1]) == 6 for q in quantities)
    lines = frame["line"].to_list()
    assert any('"quantity":"' in ln for ln in lines) and any(
        re.search(r'"quantity":\d', ln) for ln in lines
    )
    assert any('"properties":{' in ln for ln in lines)
    ids = frame["event_id"].to_list()
    assert max(len(i) for i in ids) == 128
    # Some event ids are shared by two tenants (valid: the key is tenant_id + event_id).
    assert (
        frame.group_by("event_id")
        .agg(pl.col("tenant_id").n_unique())
        .filter(pl.col("tenant_id") > 1)
        .height
        > 0
    )


def test_current_month_stops_before_now(tmp_path: Path) -> None:
    now = datetime(2026, 11, 10, 15, 42, tzinfo=UTC)
    frame = generate_events_frame(UsageSpec(month="2026-11", events=2000, now=now))
    assert frame["occurred_at_utc"].max() < datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    with pytest.raises(GenerateError):
        UsageSpec(month="2026-12", events=10, now=now).month and generate_events_frame(
            UsageSpec(month="2026-12", events=10, now=now)
        )


def test_spec_rejects_bad_parameters() -> None:
    for bad in (
        {"month": "2026-1"},
        {"bad": -0.1},
        {"late": 1.5},
        {"bad": 0.6, "late": 0.6},
        {"tenants": 0},
        {"bad_kinds": ("nope",)},
    ):
        with pytest.raises(GenerateError):
            _spec(**bad)


# -- formats -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "gz"),
    [("jsonl", False), ("ndjson", True), ("csv", False), ("csv", True), ("parquet", False)],
)
def test_formats_read_back_with_polars_and_duckdb(tmp_path: Path, fmt: str, gz: bool) -> None:
    spec = _spec(events=2000)
    summary = generate_usage(tmp_path, spec, format=fmt, gzip=gz)  # type: ignore[arg-type]
    suffix = {"jsonl": ".jsonl", "ndjson": ".ndjson", "csv": ".csv", "parquet": ".parquet"}[fmt]
    assert all(f.endswith(suffix + (".gz" if gz else "")) for f in summary.files)
    pattern = str(tmp_path / "*")
    con = duckdb.connect()
    if fmt == "parquet":
        frame = pl.read_parquet(summary.files)
        count = con.sql(f"select count(*) from read_parquet('{pattern}')").fetchall()
    elif fmt == "csv":
        frame = pl.concat(
            [pl.read_csv(io.BytesIO(_read(Path(f))), infer_schema=False) for f in summary.files]
        )
        count = con.sql(
            f"select count(*) from read_csv('{pattern}', all_varchar=true, header=true)"
        ).fetchall()
    else:
        frame = pl.concat(
            [pl.read_ndjson(io.BytesIO(_read(Path(f)))) for f in summary.files],
            how="diagonal_relaxed",
        )
        count = con.sql(
            f"select count(*) from read_json('{pattern}', format='newline_delimited')"
        ).fetchall()
    assert frame.height == spec.events
    assert count == [(spec.events,)]
    assert set(frame.columns) >= set(REQUIRED)
    assert frame["event_id"].n_unique() >= spec.events - 30  # a few ids are cross-tenant


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def test_csv_quotes_properties_and_keeps_bad_rows_one_line(tmp_path: Path) -> None:
    spec = _spec(events=2000, bad=0.2)
    summary = generate_usage(tmp_path, spec, format="csv")
    assert "malformed_row" not in summary.rejected_by_reason  # no such thing in CSV
    rows = [r for f in summary.files for r in csv.DictReader(io.StringIO(_read(Path(f)).decode()))]
    assert len(rows) == spec.events
    props = [r["properties"] for r in rows if r["properties"]]
    assert props and all(isinstance(json.loads(p), dict) for p in props)


def test_files_by_rows_splits_at_the_row_count(tmp_path: Path) -> None:
    summary = generate_usage(tmp_path, _spec(events=2500), files_by="rows", rows_per_file=1000)
    names = [Path(f).name for f in summary.files]
    assert names == [f"usage-{MONTH}-part-0000{i}.jsonl" for i in range(3)]
    assert [len(_lines(Path(f))) for f in summary.files] == [1000, 1000, 500]


# -- oracle --------------------------------------------------------------------------


def _sums_from_text(paths: list[str]) -> dict[tuple[str, str, date], Decimal]:
    """Per (tenant, metric, UTC day): the sum over first-seen valid events, from the text."""
    seen: set[tuple[str, str]] = set()
    sums: dict[tuple[str, str, date], Decimal] = defaultdict(Decimal)
    for path in sorted(paths):
        for line in _lines(Path(path)):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _reference_reason(obj) != "ok":
                continue
            key = (obj["tenant_id"], obj["event_id"])
            if key in seen:
                continue
            seen.add(key)
            day = _timestamp(obj["occurred_at"]).astimezone(UTC).date()  # type: ignore[union-attr]
            sums[(obj["tenant_id"], obj["metric"], day)] += Decimal(str(obj["quantity"]))
    return dict(sums)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_oracle_equals_the_sums_recomputed_from_the_files(tmp_path: Path, suffix: str) -> None:
    spec = _spec(events=5000, duplicates=0.03, conflicts=0.03, late=0.05, bad=0.1)
    oracle_path = tmp_path / f"oracle{suffix}"
    summary = generate_usage(tmp_path / "out", spec, oracle_path=oracle_path)
    oracle = read_oracle(oracle_path)
    assert oracle_sums(oracle) == _sums_from_text(list(summary.files))
    assert oracle["event_count"].sum() == summary.accepted
    assert sorted({d.isoformat() for d in oracle["usage_date"]}) == list(summary.days)
    assert oracle.schema["quantity_sum"] == pl.String  # exact decimal text, never float
    assert all(re.fullmatch(r"\d+\.\d{6}", q) for q in oracle["quantity_sum"])


# -- CLI -----------------------------------------------------------------------------


def test_cli_writes_files_and_prints_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "generate",
            str(tmp_path / "out"),
            "--month",
            MONTH,
            "--tenants",
            "5",
            "--events",
            "500",
            "--bad",
            "0.1",
            "--duplicates",
            "0.02",
            "--late",
            "0.05",
            "--format",
            "csv",
            "--gzip",
            "--oracle",
            str(tmp_path / "oracle.csv"),
            "--seed",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 500
    assert payload["accepted"] + payload["duplicates"] + payload["rejected"] == 500
    assert all(Path(f).exists() and f.endswith(".csv.gz") for f in payload["files"])
    assert (tmp_path / "oracle.csv").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--month", "2026-13"],
        ["--month", "October"],
        ["--month", MONTH, "--bad", "-0.1"],
        ["--month", MONTH, "--duplicates", "1.5"],
        ["--month", MONTH, "--bad", "0.7", "--late", "0.7"],
        ["--month", MONTH, "--format", "xml"],
        ["--month", MONTH, "--files-by", "week"],
        ["--month", MONTH, "--events", "-5"],
    ],
)
def test_cli_bad_usage_exits_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_other_months_and_seeds_never_reuse_an_event_key() -> None:
    # NOTE: a reused (tenant_id, event_id) across two generated batches would make the
    # second batch's events conflicting duplicates when both are ingested.
    frames = [
        generate_events_frame(_spec(month=month, seed=seed, events=500))
        for month, seed in (("2026-09", 1), ("2026-10", 1), ("2026-10", 2))
    ]
    keys = [set(f.select("tenant_id", "event_id").iter_rows()) for f in frames]
    assert not keys[0] & keys[1] and not keys[1] & keys[2] and not keys[0] & keys[2]
    custom = generate_events_frame(_spec(events=5, id_prefix="batch-7-"))
    assert all(e.startswith("batch-7-") for e in custom["event_id"])


def test_billable_properties_are_additive_and_typed_in_parquet(tmp_path: Path) -> None:
    # issue 13: the properties billable metrics read; off by default (seeds unchanged)
    import json as _json

    from tallyflow.synthetic.generate import BILLABLE_MODELS, UsageSpec, generate_events_frame

    plain = generate_events_frame(UsageSpec(month="2026-10", events=300, seed=3))
    same = generate_events_frame(UsageSpec(month="2026-10", events=300, seed=3))
    assert plain.equals(same)
    billable = generate_events_frame(
        UsageSpec(month="2026-10", events=300, seed=3, billable_properties=True)
    )
    assert billable.get_column("event_id").equals(plain.get_column("event_id"))
    props = [_json.loads(p) for p in billable.get_column("properties").to_list()]
    assert all(set(p) == {"model", "region", "user_id", "latency_ms", "level"} for p in props)
    assert {p["model"] for p in props} <= set(BILLABLE_MODELS)
    assert len({p["model"] for p in props}) == 20
