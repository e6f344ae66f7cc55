"""`tallyflow generate OUT_DIR --month YYYY-MM ...`: synthetic usage logs (and an oracle)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        out_dir: Annotated[Path, typer.Argument(help="Folder to write the usage files into")],
        month: Annotated[str, typer.Option("--month", help="UTC month to cover, YYYY-MM")],
        tenants: Annotated[int, typer.Option("--tenants", min=1, help="Number of tenants")] = 20,
        events: Annotated[
            int, typer.Option("--events", min=0, help="Rows to write in all")
        ] = 10_000,
        format: Annotated[
            str, typer.Option("--format", help="jsonl, ndjson, csv or parquet")
        ] = "jsonl",
        gzip: Annotated[bool, typer.Option("--gzip", help="Gzip the files (not Parquet)")] = False,
        files_by: Annotated[
            str, typer.Option("--files-by", help="One file per UTC day (day) or per N rows (rows)")
        ] = "day",
        rows_per_file: Annotated[
            int, typer.Option("--rows-per-file", min=1, help="Rows per file with --files-by rows")
        ] = 100_000,
        duplicates: Annotated[
            float, typer.Option("--duplicates", help="Share of exact duplicates (0..1)")
        ] = 0.0,
        conflicts: Annotated[
            float, typer.Option("--conflicts", help="Share of conflicting duplicates (0..1)")
        ] = 0.0,
        late: Annotated[
            float, typer.Option("--late", help="Share of late events, in their own file (0..1)")
        ] = 0.0,
        bad: Annotated[
            float, typer.Option("--bad", help="Share of bad rows, every reason (0..1)")
        ] = 0.0,
        seed: Annotated[
            int, typer.Option("--seed", help="Random seed (same seed, same files)")
        ] = 0,
        oracle: Annotated[
            Path | None,
            typer.Option("--oracle", help="Write expected usage_daily rows here (.parquet/.csv)"),
        ] = None,
        billable_properties: Annotated[
            bool,
            typer.Option(
                "--billable-properties",
                help="Give every event model, region, user_id, latency_ms and level properties",
            ),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    ) -> None:
        """Write a month of synthetic usage logs, optionally with bad rows and an oracle."""
        from tallyflow.cli.output import print_json, usage_error
        from tallyflow.synthetic.generate import (
            FORMATS,
            GenerateError,
            UsageSpec,
            generate_usage,
        )

        if format not in FORMATS:
            usage_error(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
        if files_by not in ("day", "rows"):
            usage_error(f"--files-by must be day or rows, got {files_by!r}")
        try:
            spec = UsageSpec(
                month=month,
                tenants=tenants,
                events=events,
                seed=seed,
                duplicates=duplicates,
                conflicts=conflicts,
                late=late,
                bad=bad,
                billable_properties=billable_properties,
            )
            summary = generate_usage(
                out_dir,
                spec,
                format=format,  # type: ignore[arg-type]
                gzip=gzip,
                files_by=files_by,  # type: ignore[arg-type]
                rows_per_file=rows_per_file,
                oracle_path=oracle,
            )
        except GenerateError as exc:
            usage_error(str(exc))
        if as_json:
            print_json(summary.to_json())
            return
        typer.echo(
            f"wrote {summary.rows:,} rows in {len(summary.files)} {summary.format} files "
            f"to {summary.out_dir} in {summary.seconds:.1f} s"
        )
        typer.echo(
            f"  expected on ingest: accepted {summary.accepted:,}, "
            f"duplicates {summary.duplicates:,}, rejected {summary.rejected:,}"
        )
        for reason, count in summary.rejected_by_reason.items():
            typer.echo(f"    {reason}: {count:,}")
        if summary.late_files:
            typer.echo(f"  late events: {', '.join(summary.late_files)}")
        if summary.oracle:
            typer.echo(f"  oracle: {summary.oracle}")
