"""`tallyflow ingest [PATH...] [--json]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        paths: Annotated[
            list[str] | None,
            typer.Argument(
                help="Files or folders (local, or s3://bucket/prefix) to ingest"
                " (default: the landing location)"
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
        no_inbox: Annotated[
            bool, typer.Option("--no-inbox", help="Do not drain events pushed over HTTP")
        ] = False,
    ) -> None:
        """Validate usage files and pushed events, append them to the lake, re-aggregate the
        touched days into usage_daily and refresh quotas. Rejected rows do not fail the run."""
        from tallyflow.cli.flow_runs import run_flow
        from tallyflow.cli.output import print_json, usage_error
        from tallyflow.core import storage

        try:
            urls = [storage.parse_url(p) for p in paths or []]
        except storage.StorageConfigError as exc:
            usage_error(exc.message)
        missing = [u for u in urls if storage.is_local(u) and not storage.exists(u)]
        if missing:
            usage_error(f"no such file or folder: {', '.join(missing)}")
        if not urls:
            _require_default_landing()

        def load() -> Any:
            from flows.ingest_usage import ingest_usage

            return ingest_usage

        result = run_flow(load, paths=urls or None, drain_inbox=not no_inbox)
        if as_json:
            print_json(result)
            return
        print_ingest_summary(result)


def _require_default_landing() -> None:
    """Without paths, `ingest` reads the configured landing: a local one that does not exist
    is the user's setup to fix (exit 2, no flow run), not a failed run."""
    from tallyflow.cli.output import usage_error
    from tallyflow.core import storage
    from tallyflow.core.settings import load_settings

    try:
        settings = load_settings()
        settings.check_storage()  # NOTE: a bad lake or landing setting is told first
        landing = settings.landing_location.url
    except storage.StorageConfigError as exc:
        usage_error(exc.message)
    if storage.is_local(landing) and not storage.exists(landing):
        usage_error(
            f"no such file or folder: {landing} (the landing folder: create it, set "
            "TALLYFLOW_LANDING, or give the files to ingest)"
        )


def print_ingest_summary(result: dict[str, Any]) -> None:
    typer.echo(
        f"{result['files']} files read ({result['skipped_files']} already ingested), "
        f"{result['rows']} rows: {result['accepted']} accepted, "
        f"{result['duplicates']} duplicates, {result['rejected']} rejected"
    )
    for reason, count in result["rejected_by_reason"].items():
        typer.echo(f"  {reason}: {count}")
    if result["days"]:
        typer.echo(f"days re-aggregated: {', '.join(result['days'])}")
