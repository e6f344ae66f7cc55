"""Settings, read from the environment (or a `.env` file) in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tallyflow.core.storage import Location


class Settings(BaseSettings):
    """tallyflow configuration. Every field maps to a `TALLYFLOW_<NAME>` variable."""

    model_config = SettingsConfigDict(
        env_prefix="TALLYFLOW_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".tallyflow"), description="State folder (db, lake, ...)")
    database_url: str | None = Field(
        default=None, description="postgresql+psycopg://... ; unset = embedded Postgres"
    )
    landing: str | None = Field(default=None, description="Landing folder for raw usage logs")
    lake: str | None = Field(default=None, description="Event lake folder (Parquet)")
    max_push_events: int = Field(default=10_000, description="Cap of events per usage:ingest")
    dask_address: str | None = Field(
        default=None, description="tcp://host:port of a Dask scheduler; unset = in process"
    )

    @property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def landing_location(self) -> Location:
        """The landing location (a local folder or s3://...); StorageConfigError if invalid."""
        return (
            Location.parse(self.landing)
            if self.landing
            else Location(str(self.home_path / "landing"))
        )

    @property
    def lake_location(self) -> Location:
        """The lake location (a local folder or s3://...); StorageConfigError if invalid."""
        return Location.parse(self.lake) if self.lake else Location(str(self.home_path / "lake"))

    @property
    def landing_path(self) -> Path:
        """The landing as a local folder (StorageConfigError when it is an object store)."""
        return self.landing_location.path

    @property
    def lake_path(self) -> Path:
        """The lake as a local folder (StorageConfigError when it is an object store)."""
        return self.lake_location.path

    def check_storage(self) -> None:
        """Raise StorageConfigError when the landing or lake setting names no valid location."""
        self.landing_location, self.lake_location  # noqa: B018 - parsed for their errors

    @property
    def prefect_home(self) -> Path:
        return self.home_path / "prefect"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
