"""`tallyflow serve`: the HTTP API under uvicorn (no Prefect import on this path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tallyflow.core.settings import Settings


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option("--host", help="Interface to bind")] = "127.0.0.1",
        port: Annotated[
            int,
            typer.Option(
                "--port", min=0, max=65535, help="TCP port (0: any free port, logged at start)"
            ),
        ] = 8000,
        log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level")] = "info",
        access_log: Annotated[
            bool, typer.Option("--access-log/--no-access-log", help="uvicorn's own access log")
        ] = False,
    ) -> None:
        """Serve the billing API (OpenAPI at /openapi.json, Swagger UI at /docs).

        One process: a change made through it is visible to its very next quota check;
        other processes (CLI, flows) reach its quota snapshot through NOTIFY.
        """
        import uvicorn

        from api.app import create_app
        from tallyflow.core.settings import load_settings

        settings = load_settings()
        _check_secret_key(settings)
        configure_json_logging(log_level)
        # NOTE: limits against hostile traffic: connections+tasks beyond limit_concurrency
        # get 503; an idle keep-alive is closed after timeout_keep_alive s; a request line
        # plus headers over h11_max_incomplete_event_size bytes is refused. Bodies are
        # capped and timed by api/guard.py.
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            limit_concurrency=settings.api_limit_concurrency,
            timeout_keep_alive=settings.api_timeout_keep_alive,
            h11_max_incomplete_event_size=settings.api_h11_max_incomplete_event_size,
        )


def _check_secret_key(settings: Settings) -> None:
    """Webhook endpoints need a working TALLYFLOW_SECRET_KEY: say so and exit 2 before
    uvicorn starts (the app's startup refuses too, with a traceback-free message here)."""
    from sqlalchemy.exc import SQLAlchemyError

    from api.app import check_secret_key
    from tallyflow.cli.output import usage_error
    from tallyflow.core.db import get_engine
    from tallyflow.core.secrets import SecretKeyError

    engine = get_engine(settings)
    try:
        check_secret_key(engine, settings)
    except SecretKeyError as exc:
        usage_error(exc.message)
    except SQLAlchemyError:
        pass  # the database's own problems are reported by the app's startup as before
    finally:
        engine.dispose()


def configure_json_logging(level: str) -> None:
    """The tallyflow loggers as one JSON object per line (the request log carries the
    request id; see api/guard.py)."""
    import json
    import logging

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            message = record.getMessage()
            try:
                body = json.loads(message) if message.startswith("{") else {"message": message}
            except ValueError:
                body = {"message": message}
            out = {"at": self.formatTime(record), "level": record.levelname, "logger": record.name}
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
            return json.dumps({**out, **body})

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tallyflow")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
