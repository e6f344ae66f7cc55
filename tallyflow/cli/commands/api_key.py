"""`tallyflow api-key create|revoke|rotate|list`: API keys (shown once, stored as a hash).

Every create, revoke and rotate is written to the audit log (key name "cli") in the
key change's transaction.
"""

from __future__ import annotations

import datetime as dt
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
            typer.Option(
                "--scope",
                help="usage.write (push usage), billing.read, billing.write (global keys "
                "only); repeat for several",
            ),
        ],
        tenant: Annotated[
            str | None, typer.Option("--tenant", help="Restrict the key to a tenant")
        ] = None,
        expires_on: Annotated[
            str | None,
            typer.Option("--expires-on", help="YYYY-MM-DD (UTC): the key stops working that day"),
        ] = None,
    ) -> None:
        """Create a key and print it once, alone on stdout (details go to stderr)."""
        from services.api_keys import check_new_key, create_api_key
        from services.audit import CLI_ACTOR, record_change
        from tallyflow.cli.output import usage_error
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import InvalidInput
        from tallyflow.core.settings import load_settings

        expiry = _parse_day(expires_on)
        try:
            # bad usage exits before any database work
            check_new_key(name, scope, tenant, expires_on=expiry)
        except InvalidInput as exc:
            usage_error(exc.message)
        engine = get_engine(load_settings())
        try:
            with engine.begin() as conn:
                created = create_api_key(
                    conn, name=name, scopes=scope, tenant_id=tenant, expires_on=expiry
                )
                record_change(
                    conn,
                    CLI_ACTOR,
                    "api_key.create",
                    tenant_id=tenant,
                    obj=("api_key", created.record.id),
                    before=None,
                    after=_public(created.record),
                )
        except InvalidInput as exc:
            usage_error(exc.message)
        record = created.record
        typer.echo(created.key)
        typer.echo(
            f"created API key {record.id} ({record.name}) prefix {record.prefix}, scopes "
            f"{', '.join(record.scopes)}, tenant {record.tenant_id or 'any'}, expires "
            f"{record.expires_on or 'never'}; it is shown only this once",
            err=True,
        )

    @keys.command("revoke")
    def revoke(
        target: Annotated[str, typer.Argument(help="The key's id, its prefix, or the key itself")],
    ) -> None:
        """Revoke a key: it stops working at once on every API process."""
        from services.api_keys import revoke_api_key
        from services.audit import CLI_ACTOR, record_change
        from tallyflow.cli.output import fail
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import NotFound
        from tallyflow.core.settings import load_settings

        engine = get_engine(load_settings())
        try:
            with engine.begin() as conn:
                revoked = revoke_api_key(conn, target)
                record_change(
                    conn,
                    CLI_ACTOR,
                    "api_key.revoke",
                    tenant_id=revoked.tenant_id,
                    obj=("api_key", revoked.id),
                    before=_public(revoked),
                    after=None,
                )
        except NotFound as exc:
            fail(exc.message)
        typer.echo(
            f"revoked API key {revoked.id} ({revoked.name}) prefix {revoked.prefix}", err=True
        )

    @keys.command("rotate")
    def rotate(
        name: Annotated[str, typer.Option("--name", help="The name of the key to rotate")],
    ) -> None:
        """Replace a key by a new secret with the same scopes, tenant and expiry; the old
        one is revoked in the same transaction. The new key is printed once on stdout."""
        from services.api_keys import rotate_api_key
        from services.audit import CLI_ACTOR, record_change
        from tallyflow.cli.output import fail, usage_error
        from tallyflow.core.db import get_engine
        from tallyflow.core.errors import InvalidInput, NotFound
        from tallyflow.core.settings import load_settings

        engine = get_engine(load_settings())
        try:
            with engine.begin() as conn:
                old, new = rotate_api_key(conn, name)
                record_change(
                    conn,
                    CLI_ACTOR,
                    "api_key.rotate",
                    tenant_id=old.tenant_id,
                    obj=("api_key", new.record.id),
                    before=_public(old),
                    after=_public(new.record),
                )
        except NotFound as exc:
            fail(exc.message)
        except InvalidInput as exc:
            usage_error(exc.message)
        typer.echo(new.key)
        typer.echo(
            f"rotated API key {name!r}: {old.id} (prefix {old.prefix}) revoked, "
            f"{new.record.id} (prefix {new.record.prefix}) created; shown only this once",
            err=True,
        )

    @keys.command("list")
    def list_keys() -> None:
        """The live keys (id, prefix, name, scopes, tenant, expiry); never the keys."""
        from services.api_keys import live_api_keys
        from tallyflow.core.db import get_engine
        from tallyflow.core.settings import load_settings

        with get_engine(load_settings()).connect() as conn:
            for k in live_api_keys(conn):
                typer.echo(
                    f"{k.id}\t{k.prefix}\t{k.name}\t{','.join(k.scopes)}\t{k.tenant_id or '*'}"
                    f"\t{k.expires_on or '-'}"
                )


def _parse_day(value: str | None) -> dt.date | None:
    from tallyflow.cli.output import usage_error

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        usage_error(f"--expires-on {value!r} is not a date (YYYY-MM-DD)")


def _public(record: object) -> dict[str, object]:
    """A key as audited: never its hash."""
    fields = ("id", "name", "prefix", "scopes", "tenant_id", "expires_on")
    return {f: getattr(record, f) for f in fields}
