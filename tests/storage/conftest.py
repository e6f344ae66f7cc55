"""Fixtures for storage tests: a real S3 wire protocol on loopback (moto's server mode, on
a free port, stopped after the session), a bucket per test, settings with the landing and
the lake on it, and a second fresh database for comparing runs side by side."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tallyflow.core import storage
from tallyflow.core.settings import Settings
from tests.conftest import _admin, _with_database


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """http://127.0.0.1:<port> of a moto S3 server in this process (port chosen by the OS)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; the standard AWS variables point at the loopback server."""
    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "tallyflow-test",
        "AWS_SECRET_ACCESS_KEY": "tallyflow-test-secret",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    name = f"tf-{uuid.uuid4().hex[:12]}"
    storage.filesystem("s3://").mkdir(name)
    return name


@pytest.fixture
def s3_settings(settings: Settings, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with landing and lake on the bucket (exported for flows too)."""
    landing, lake = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/lake"
    monkeypatch.setenv("TALLYFLOW_LANDING", landing)
    monkeypatch.setenv("TALLYFLOW_LAKE", lake)
    return settings.model_copy(update={"landing": landing, "lake": lake})


@pytest.fixture
def other_database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A second fresh, migrated database (to run the same input another way and compare)."""
    name = f"tf_test_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _with_database(pg_server_url, name)
    with _admin(pg_server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def upload_tree(local: str | Path, url: str) -> list[str]:
    """Copy a local folder's files to an object-store prefix; returns their URLs."""
    root = Path(local)
    urls = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = storage.join(url, path.relative_to(root).as_posix())
        storage.write_bytes(target, path.read_bytes())
        urls.append(target)
    return urls


@pytest.fixture
def crash_children_report_to_the_harness(prefect_api_url: str) -> None:
    """The crash harness's children (tests/reliability/harness.py) run the real flows: they
    report to the session's Prefect test server."""
    from tests.reliability import harness

    harness.PREFECT_API_URL = prefect_api_url
