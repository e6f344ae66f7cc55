"""Settings, read from the environment (or a `.env` file) in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook endpoints on loopback/private addresses (internal receivers)",
    )

    @property
    def home_path(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def landing_path(self) -> Path:
        return (
            Path(self.landing).expanduser().resolve()
            if self.landing
            else self.home_path / "landing"
        )

    @property
    def lake_path(self) -> Path:
        return Path(self.lake).expanduser().resolve() if self.lake else self.home_path / "lake"

    @property
    def prefect_home(self) -> Path:
        return self.home_path / "prefect"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
