"""Idempotency by (tenant_id, event_id): new, duplicate or conflicting_duplicate.

The standing version of a key is the committed lake's, else the batch's first occurrence
(files in path order, rows in order, then pushed events in arrival order). A repeat with
the same metric, quantity and occurred_at is a duplicate (dropped, counted); with other
content it is a conflicting_duplicate (rejected, the standing version stays).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tallyflow.core import storage
from tallyflow.core.sqlfiles import duckdb_sql

KEY = ("tenant_id", "event_id")
CONTENT = ("metric", "quantity_micros", "occurred_at")


@dataclass(frozen=True)
class DedupeResult:
    new: pl.DataFrame  # events to append to the lake
    duplicates: pl.DataFrame  # dropped, counted (source, row)
    conflicts: pl.DataFrame  # rejected with conflicting_duplicate


def dedupe_events(
    batch: pl.DataFrame, lake_files: list[str], prior: pl.DataFrame | None = None
) -> DedupeResult:
    """Split a batch of accepted events against the lake files, `prior` (KEY + CONTENT of
    the events accepted earlier in the same run, not yet in the committed lake) and itself."""
    # NOTE: only key and content columns are copied while deciding; the full rows are
    # filtered once at the end (a batch can hold millions of events).
    batch = batch.with_row_index("position").cast({"position": pl.Int64})
    first_mask = batch.select(pl.struct(*KEY).is_first_distinct()).to_series()
    firsts = batch.select("position", *KEY, *CONTENT).filter(first_mask)
    repeats = batch.filter(~first_mask)

    standing = firsts.with_columns(pl.lit(False).alias("in_lake"))
    found_parts: list[pl.DataFrame] = []
    if lake_files and firsts.height:
        batch_keys = firsts.select("position", *KEY)  # noqa: F841 - read by DuckDB by name
        con = storage.connect_duckdb(lake_files)
        try:
            found_parts.append(
                con.sql(
                    duckdb_sql("ingest/select_lake_versions_of_keys"), params={"files": lake_files}
                )
                .pl()
                .cast(
                    {
                        "position": pl.Int64,
                        "lake_quantity_micros": pl.Int64,
                        "lake_occurred_at": pl.Datetime("us", "UTC"),
                    }
                )
            )
        finally:
            con.close()
    if prior is not None and prior.height and firsts.height:
        found_parts.append(
            firsts.select("position", *KEY)
            .join(
                prior.select(*KEY, *[pl.col(c).alias(f"lake_{c}") for c in CONTENT]),
                on=list(KEY),
                how="inner",
            )
            .drop(*KEY)
        )
    if found_parts:
        # NOTE: a key is in the committed lake or in `prior`, never both (prior holds only
        # events that were new to the lake), so one standing version per position.
        found = pl.concat(found_parts, how="vertical_relaxed")
        standing = (
            standing.join(found, on="position", how="left", maintain_order="left")
            .with_columns(
                pl.col("lake_metric").is_not_null().alias("in_lake"),
                pl.coalesce("lake_metric", "metric").alias("metric"),
                pl.coalesce("lake_quantity_micros", "quantity_micros").alias("quantity_micros"),
                pl.coalesce("lake_occurred_at", "occurred_at").alias("occurred_at"),
            )
            .drop("lake_metric", "lake_quantity_micros", "lake_occurred_at")
        )

    same = pl.all_horizontal(pl.col(c) == pl.col(f"{c}_standing") for c in CONTENT)
    # firsts that are already in the lake are repeats of the lake's version
    in_lake = standing.filter("in_lake")
    firsts_vs_lake = batch.join(
        in_lake.select("position", *[pl.col(c).alias(f"{c}_standing") for c in CONTENT]),
        on="position",
        how="inner",
        maintain_order="left",
    )
    repeats_vs_standing = repeats.join(
        standing.select(*KEY, *[pl.col(c).alias(f"{c}_standing") for c in CONTENT]),
        on=list(KEY),
        how="inner",
        maintain_order="left",
    )
    checked = pl.concat([firsts_vs_lake, repeats_vs_standing], how="vertical_relaxed")
    drop_cols = ["position", *[f"{c}_standing" for c in CONTENT]]
    duplicates = checked.filter(same).drop(drop_cols)
    conflicts = checked.filter(~same).drop(drop_cols)
    keep = first_mask & ~batch.get_column("position").is_in(
        in_lake.get_column("position").implode()
    )
    new = batch.filter(keep).drop("position")
    return DedupeResult(new=new, duplicates=duplicates, conflicts=conflicts)


def key_hashes(frame: pl.DataFrame) -> pl.Series:
    """A 64-bit hash of each row's (tenant_id, event_id): a cheap first screen for repeats
    across a run's files. A match is only a candidate: `versions_of_keys` checks it exactly."""
    return frame.select(pl.struct(*KEY).hash(seed=0x7A11F10)).to_series()


def versions_of_keys(
    keys: pl.DataFrame, lake_files: list[str], frames: list[pl.DataFrame]
) -> pl.DataFrame:
    """KEY + CONTENT of the events with these keys in `lake_files` and in `frames`."""
    parts = [f.join(keys, on=list(KEY), how="semi").select(*KEY, *CONTENT) for f in frames]
    if lake_files and keys.height:
        batch_keys = keys.with_row_index("position")
        con = storage.connect_duckdb(lake_files)
        try:
            found = (
                con.sql(
                    duckdb_sql("ingest/select_lake_versions_of_keys"), params={"files": lake_files}
                )
                .pl()
                .cast({"position": pl.UInt32})
            )
        finally:
            con.close()
        parts.append(
            batch_keys.join(found, on="position", how="inner").select(
                *KEY, *[pl.col(f"lake_{c}").alias(c) for c in CONTENT]
            )
        )
    schema = pl.Schema(
        {
            "tenant_id": pl.String(),
            "event_id": pl.String(),
            "metric": pl.String(),
            "quantity_micros": pl.Int64(),
            "occurred_at": pl.Datetime("us", "UTC"),
        }
    )
    return pl.concat([p.cast(schema) for p in parts]) if parts else pl.DataFrame(schema=schema)
