"""The public entry points: the events frame and the usage files (written atomically)."""

from __future__ import annotations

import gzip as gzip_module
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from tallyflow.synthetic.generate.oracle import compute_oracle, write_oracle
from tallyflow.synthetic.generate.plan import _file_order, _plan
from tallyflow.synthetic.generate.render import _render, _tables
from tallyflow.synthetic.generate.spec import (
    _BILLABLE_SAMPLE,
    _CODE,
    _JSON_ONLY_KINDS,
    _LATE_FILE_KEY,
    _PROPERTIES,
    ACCEPTED_KINDS,
    BAD_KINDS,
    FIELDS,
    FORMATS,
    KINDS,
    FilesBy,
    Format,
    GenerateError,
    GenerateSummary,
    UsageSpec,
    _counts,
    time_window,
)


def _sorted_plan(spec: UsageSpec) -> pl.DataFrame:
    return _file_order(_plan(spec, _counts(spec))).with_row_index("position")


def generate_events_frame(spec: UsageSpec, *, format: Format = "jsonl") -> pl.DataFrame:
    """All rows of a spec in file order, for benchmarks that write their own files.

    Columns: the six event fields as text (null = absent; `quantity` and `occurred_at`
    as they appear in CSV), `line` (the row's JSONL or CSV text; null for Parquet),
    `kind` (clean, late, duplicate, conflicting_duplicate or a bad reason),
    `usage_date` / `occurred_at_utc` (the row's base UTC instant) and `quantity_micros`
    (Int64, set on accepted rows only).
    """
    spec = _for_format(spec, format)
    rendered = _render(_sorted_plan(spec), _tables(spec, format), format)
    return _public_columns(rendered)


def _public_columns(rendered: pl.DataFrame) -> pl.DataFrame:
    accepted = pl.col("kind").is_in(ACCEPTED_KINDS)
    return rendered.with_columns(
        kind=pl.lit(pl.Series(KINDS)).gather(pl.col("kind_code").cast(pl.Int64))
    ).select(
        *FIELDS,
        "line",
        "kind",
        usage_date=pl.from_epoch("instant_us", "us").dt.date(),
        occurred_at_utc=pl.from_epoch("instant_us", "us").dt.replace_time_zone("UTC"),
        quantity_micros=pl.when(accepted).then(pl.col("quantity_micros")),
    )


def _for_format(spec: UsageSpec, fmt: str) -> UsageSpec:
    if fmt not in FORMATS:
        raise GenerateError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt in ("csv", "parquet") and _JSON_ONLY_KINDS & set(spec.bad_kinds):
        kinds = tuple(k for k in spec.bad_kinds if k not in _JSON_ONLY_KINDS)
        return replace(spec, bad_kinds=kinds)
    return spec


def _extension(fmt: str, gzip: bool) -> str:
    return f".{fmt}" + (".gz" if gzip and fmt != "parquet" else "")


def _write_file(part: pl.DataFrame, path: Path, fmt: str, gzip: bool) -> None:
    """Write one file atomically (temp name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        # NOTE: properties as a Struct column (a typed Parquet file's object), not JSON text.
        props_type = pl.Series(_PROPERTIES).str.json_decode().dtype
        if part.get_column("properties").drop_nulls().str.starts_with('{"model"').any():
            props_type = pl.Series([_BILLABLE_SAMPLE]).str.json_decode().dtype  # issue 13
        props = pl.col("properties").str.json_decode(props_type)
        part.select(*FIELDS[:-1], props).write_parquet(tmp)
        tmp.replace(path)
        return
    buffer = io.BytesIO()
    if fmt == "csv":
        buffer.write((",".join(FIELDS) + "\n").encode())
    part.select("line").write_csv(buffer, include_header=False, quote_style="never")
    with open(tmp, "wb") as out:
        if gzip:
            # NOTE: mtime=0 and no name in the header: same seed, same bytes, same sha256.
            with gzip_module.GzipFile(
                filename="", mode="wb", fileobj=out, mtime=0, compresslevel=1
            ) as gz:
                gz.write(buffer.getbuffer())
        else:
            out.write(buffer.getbuffer())
    tmp.replace(path)


def _file_slices(
    plan: pl.DataFrame, files_by: str, rows_per_file: int
) -> Iterator[tuple[int, int, int]]:
    """(file key, offset, length) of each output file, in order, over the sorted plan."""
    is_late = pl.col("kind_code") == _CODE["late"]
    if files_by == "day":
        key = pl.when(is_late).then(_LATE_FILE_KEY).otherwise(pl.col("usage_day").cast(pl.Int64))
    else:
        key = pl.when(is_late).then(_LATE_FILE_KEY).otherwise(pl.col("position") // rows_per_file)
    runs = plan.select(key.alias("key").rle()).unnest("key")
    offset = 0
    for length, value in runs.select("len", "value").iter_rows():
        yield int(value), offset, int(length)
        offset += int(length)


def generate_usage(
    out_dir: Path,
    spec: UsageSpec,
    *,
    format: Format = "jsonl",
    gzip: bool = False,
    files_by: FilesBy = "day",
    rows_per_file: int = 100_000,
    oracle_path: Path | None = None,
) -> GenerateSummary:
    """Write the usage files of a spec into out_dir (and its oracle when asked)."""
    began = time.perf_counter()
    spec = _for_format(spec, format)
    if files_by not in ("day", "rows"):
        raise GenerateError(f"files_by must be day or rows, got {files_by!r}")
    if rows_per_file < 1:
        raise GenerateError(f"rows_per_file must be >= 1, got {rows_per_file}")
    plan = _sorted_plan(spec)
    tables = _tables(spec, format)
    _, window_end = time_window(spec)
    ext = _extension(format, gzip)
    out_dir.mkdir(parents=True, exist_ok=True)

    files: list[str] = []
    late_files: list[str] = []
    for key, offset, length in _file_slices(plan, files_by, rows_per_file):
        if key == _LATE_FILE_KEY:
            name = f"usage-{window_end.date().isoformat()}-late"
        elif files_by == "day":
            name = f"usage-{date(1970, 1, 1) + timedelta(days=key)}"
        else:
            name = f"usage-{spec.month}-part-{key:05d}"
        path = out_dir / f"{name}{ext}"
        _write_file(_render(plan.slice(offset, length), tables, format), path, format, gzip)
        (late_files if key == _LATE_FILE_KEY else files).append(str(path))

    counts = dict.fromkeys(KINDS, 0)
    for code, count in plan.group_by("kind_code").len().iter_rows():
        counts[KINDS[code]] = count
    oracle_file: str | None = None
    if oracle_path is not None:
        write_oracle(compute_oracle(plan, spec), oracle_path)
        oracle_file = str(oracle_path)
    rejected_by_reason = {k: counts[k] for k in ("conflicting_duplicate", *BAD_KINDS) if counts[k]}
    accepted_days = (
        plan.filter(pl.col("kind_code") <= _CODE["late"])["usage_day"].unique().sort().to_list()
    )
    return GenerateSummary(
        out_dir=str(out_dir),
        format=format,
        gzip=gzip and format != "parquet",
        files=tuple(files + late_files),
        late_files=tuple(late_files),
        rows=plan.height,
        rows_by_kind=counts,
        accepted=counts["clean"] + counts["late"],
        duplicates=counts["duplicate"],
        rejected=sum(rejected_by_reason.values()),
        rejected_by_reason=rejected_by_reason,
        days=tuple((date(1970, 1, 1) + timedelta(days=d)).isoformat() for d in accepted_days),
        oracle=oracle_file,
        seconds=round(time.perf_counter() - began, 3),
    )
