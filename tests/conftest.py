"""Shared fixtures: a real Postgres (embedded, or TALLYFLOW_TEST_DATABASE_URL), one fresh
database per test cloned from a migrated template, real folders, and one Prefect test
harness per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

# NOTE: the session starts from a clean environment: no developer's TALLYFLOW_* or
# PREFECT_* variable (a PREFECT_API_URL would send test runs to their server, a
# TALLYFLOW_DATABASE_URL would point tests at their database), and no `.env` file read
# from the cwd (TALLYFLOW_ENV_FILE="" disables it, see tallyflow/core/settings.py).
# Kept: the knobs of the suite itself (TALLYFLOW_TEST_DATABASE_URL chooses the test
# server, TALLYFLOW_SCHEMATHESIS_EXAMPLES the fuzzing budget), which tallyflow never reads.
_SUITE_KNOBS = ("TALLYFLOW_TEST_", "TALLYFLOW_SCHEMATHESIS_EXAMPLES")
for _var in [v for v in os.environ if v.startswith(("TALLYFLOW_", "PREFECT_"))]:
    if not _var.startswith(_SUITE_KNOBS):
        del os.environ[_var]
os.environ["TALLYFLOW_ENV_FILE"] = ""
# NOTE: Prefect reads PREFECT_HOME when first imported; point it at a throwaway folder
# before any test module imports Prefect, so tests never touch a user's Prefect state.
_PREFECT_HOME = tempfile.mkdtemp(prefix="tallyflow-prefect-")
_PREFECT_HOME_OWNER = os.getpid()


@atexit.register
def _remove_prefect_home() -> None:
    """The folder goes with the process that made it (not with a forked child)."""
    if os.getpid() == _PREFECT_HOME_OWNER:
        shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

from tallyflow.core import migrate  # noqa: E402
from tallyflow.core.db import dispose_engines, get_engine, to_libpq_url, to_sqlalchemy_url  # noqa: E402
from tallyflow.core.settings import Settings  # noqa: E402
from tests.helpers import TEST_SECRET_KEY  # noqa: E402


def _with_database(url: str, name: str) -> str:
    """The same server URL pointed at database `name`."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the Postgres server the tests use (its maintenance database)."""
    external = os.environ.get("TALLYFLOW_TEST_DATABASE_URL")
    if external:
        yield to_sqlalchemy_url(external)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # NOTE: not under pytest's tmp dirs: those are 0700 (the server runs as the
        # `pgserver` user when we are root) and pruned by concurrent pytest sessions.
        root = Path(tempfile.mkdtemp(prefix="tallyflow-test-pg-"))
        root.chmod(0o755)
        server = pgserver.get_server(root / "pg", cleanup_mode="delete")
        yield to_sqlalchemy_url(server.get_uri())
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(to_libpq_url(url), autocommit=True)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str, worker_id: str) -> str:
    """A database migrated to head once per session; each test clones it (fast)."""
    name = f"tf_template_{worker_id}_{uuid.uuid4().hex[:8]}"
    with _admin(pg_server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    engine = get_engine(Settings(database_url=url))
    migrate.upgrade(engine)
    dispose_engines()
    return name


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"tf_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _with_database(pg_server_url, name)
    dispose_engines()
    with _admin(pg_server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one test; also exported to the environment so flows see the same."""
    home = tmp_path / "home"
    landing = tmp_path / "landing"
    lake = tmp_path / "lake"
    for folder in (home, landing, lake):
        folder.mkdir()
    env = {
        "TALLYFLOW_HOME": str(home),
        "TALLYFLOW_DATABASE_URL": database_url,
        "TALLYFLOW_LANDING": str(landing),
        "TALLYFLOW_LAKE": str(lake),
        "TALLYFLOW_SECRET_KEY": TEST_SECRET_KEY,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings(
        home=home,
        database_url=database_url,
        landing=str(landing),
        lake=str(lake),
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
    )


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return get_engine(settings)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (starting one costs 10-20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The session harness's API URL, for child processes (`PREFECT_API_URL=...`), so a
    subprocess's flow runs report there instead of starting a server of their own."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness set no API URL"
    return str(url)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist worker name, or 'main' without xdist."""
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))
