"""Storage locations: what a landing or lake setting may name, and what a bad one does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tallyflow.cli.app import app as cli
from tallyflow.core import storage
from tallyflow.core.settings import Settings
from tallyflow.core.storage import Location, StorageConfigError


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("s3://bucket/lake", "s3://bucket/lake"),  # the contract's form
        ("s3://bucket/lake/", "s3://bucket/lake"),  # a trailing slash is the same prefix
        ("S3://bucket//a/./b", "s3://bucket/a/b"),  # scheme case, doubled and dot segments
        ("s3://bucket", "s3://bucket"),  # the bucket's root
        ("/srv/lake/../lake", "/srv/lake"),  # a local path, normalised
        ("file:///srv/lake", "/srv/lake"),  # file:// is a local path
    ],
)
def test_locations_parse_to_one_spelling(text: str, url: str) -> None:
    assert storage.parse_url(text) == url


def test_relative_local_paths_are_made_absolute(tmp_path: Path) -> None:
    assert Location.parse("lake", base=tmp_path).url == str(tmp_path / "lake")


@pytest.mark.parametrize(
    "text",
    [
        "gs://bucket/lake",  # a scheme we do not support
        "http://example.com/lake",
        "s3:/bucket/lake",  # one slash: not a URL we can read, and never a folder "s3:"
        "s3://",  # no bucket
        "s3:///lake",
    ],
)
def test_other_schemes_are_configuration_errors(text: str) -> None:
    with pytest.raises(StorageConfigError):
        storage.parse_url(text)


def test_settings_expose_object_store_locations_never_as_local_folders(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, lake="s3://bucket/lake", landing=str(tmp_path / "in"))
    assert settings.lake_location.url == "s3://bucket/lake"
    assert not settings.lake_location.is_local
    assert settings.landing_path == tmp_path / "in"
    with pytest.raises(StorageConfigError):
        settings.lake_path  # noqa: B018 - the property raises
    with pytest.raises(StorageConfigError):
        Settings(home=tmp_path, lake="gs://bucket/lake").check_storage()


@pytest.mark.parametrize(
    "command", [["ingest"], ["backfill", "--start", "2026-10-01", "--end", "2026-10-02"]]
)
def test_cli_exits_2_on_an_unknown_scheme_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TALLYFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TALLYFLOW_LAKE", "gs://bucket/lake")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    assert "unsupported storage location 'gs://bucket/lake'" in result.stderr
    assert os.listdir(tmp_path) == []  # no folder named "gs:", no embedded database


def test_cli_exits_2_on_an_unknown_scheme_in_a_path_argument(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", "ftp://host/usage.jsonl"])
    assert result.exit_code == 2
    assert "unsupported storage location" in result.stderr


def test_files_list_move_and_remove_on_s3(s3_bucket: str) -> None:
    """The operations the lake's sweep and quarantine need, on the S3 wire protocol."""
    root = f"s3://{s3_bucket}/lake"
    storage.write_bytes(f"{root}/events/usage_date=2026-10-01/a.parquet", b"a")
    storage.write_bytes(f"{root}/events/usage_date=2026-10-02/b.parquet", b"bb")
    listed = storage.list_files(f"{root}/events")
    assert [(storage.relative(e.url, root), e.size) for e in listed] == [
        ("events/usage_date=2026-10-01/a.parquet", 1),
        ("events/usage_date=2026-10-02/b.parquet", 2),
    ]
    storage.move(listed[0].url, f"{root}/trash/a.parquet")
    assert storage.read_bytes(f"{root}/trash/a.parquet") == b"a"
    assert not storage.is_file(listed[0].url)
    storage.remove(listed[1].url)
    assert storage.list_files(f"{root}/events") == []
    assert storage.exists(f"s3://{s3_bucket}/empty-prefix")  # the bucket exists: an empty folder
    assert storage.list_files(f"s3://{s3_bucket}/empty-prefix") == []
