"""`tallyflow api-key create|revoke|list`: API keys (shown once, stored as a hash)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)
    app.add_typer(keys, name="api-key")

    @keys.command("create")
    def create(
        name: Annotated[str, typer.Option("--name", help="Who or what uses the key")],
        scope: Annotated[
            list[str],
            typer.Option("--scope", help="billing.read or billing.write (repeat for both)"),
        ],
        tenant: Annotated[
            str | None, typer.Option("--tenant", help="Restrict the key to a tenant")
        ] = None,
    ) -> None:
        """Create a key and print it once, alone on stdout (details go to stderr)."""
        from services.api_keys import check_new_key, create_api_key
        from tallyflow.cli.output import usage_error
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import InvalidInput
        from tallyflow.core.settings import load_settings

        try:
            check_new_key(name, scope, tenant)  # bad usage exits before any database work
        except InvalidInput as exc:
            usage_error(exc.message)
        engine = get_engine(load_settings())
        try:
            with engine.begin() as conn:
                created = create_api_key(conn, name=name, scopes=scope, tenant_id=tenant)
        except InvalidInput as exc:
            usage_error(exc.message)
        record = created.record
        typer.echo(created.key)
        typer.echo(
            f"created API key {record.id} ({record.name}) prefix {record.prefix}, scopes "
            f"{', '.join(record.scopes)}, tenant {record.tenant_id or 'any'}; "
            "it is shown only this once",
            err=True,
        )

    @keys.command("revoke")
    def revoke(
        target: Annotated[str, typer.Argument(help="The key's id, its prefix, or the key itself")],
    ) -> None:
        """Revoke a key: it stops working at once on every API process."""
        from services.api_keys import revoke_api_key
        from tallyflow.cli.output import fail
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import NotFound
        from tallyflow.core.settings import load_settings

        engine = get_engine(load_settings())
        try:
            with engine.begin() as conn:
                revoked = revoke_api_key(conn, target)
        except NotFound as exc:
            fail(exc.message)
        typer.echo(
            f"revoked API key {revoked.id} ({revoked.name}) prefix {revoked.prefix}", err=True
        )

    @keys.command("list")
    def list_keys() -> None:
        """The live keys (id, prefix, name, scopes, tenant); never the keys themselves."""
        from services.api_keys import live_api_keys
        from tallyflow.core.db import get_engine
        from tallyflow.core.settings import load_settings

        with get_engine(load_settings()).connect() as conn:
            for k in live_api_keys(conn):
                typer.echo(
                    f"{k.id}\t{k.prefix}\t{k.name}\t{','.join(k.scopes)}\t{k.tenant_id or '*'}"
                )
