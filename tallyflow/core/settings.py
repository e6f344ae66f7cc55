"""Settings, read from the environment (or a `.env` file) in one place.

The `.env` file is read from the current folder; `TALLYFLOW_ENV_FILE` names another one,
and an empty `TALLYFLOW_ENV_FILE` reads none (the test session sets it so, so that a
developer's `.env` never leaks into the tests).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tallyflow.core.storage import Location

if TYPE_CHECKING:
    from tallyflow.core.secrets import SecretBox


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
    # --- API hardening (issue 11) ---
    api_statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="statement_timeout of the API's sessions (0 = none)"
    )
    snapshot_reload_seconds: float = Field(
        default=30.0, gt=0, description="Reload keys and quotas this often even without NOTIFY"
    )
    snapshot_max_age_seconds: float = Field(
        default=120.0, gt=0, description="/readyz answers 503 when the quota snapshot is older"
    )
    body_cap_bytes: int = Field(default=1 << 20, gt=0, description="Request body cap")
    ingest_body_cap_bytes: int = Field(
        default=32 << 20, gt=0, description="Request body cap of POST usage:ingest"
    )
    body_read_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A body not received within this is answered 408"
    )
    api_limit_concurrency: int = Field(
        default=256, gt=0, description="uvicorn: connections+tasks before 503"
    )
    api_timeout_keep_alive: int = Field(default=5, gt=0, description="uvicorn: idle keep-alive s")
    api_h11_max_incomplete_event_size: int = Field(
        default=16 * 1024, gt=0, description="uvicorn: cap of a request line plus headers"
    )
    lake_trash_retention_days: int = Field(
        default=7, ge=0, description="Days a swept lake file stays in <lake>/trash"
    )
    ingest_batch_bytes: int = Field(
        default=64 << 20, gt=0, description="Bytes of a landing file read and validated at once"
    )
    ingest_max_line_bytes: int = Field(
        default=64 << 20, gt=0, description="Longest JSON line / CSV record (else rejected)"
    )
    ingest_max_decompressed_bytes: int = Field(
        default=32 << 30, gt=0, description="Cap of a gzip file's decompressed size"
    )
    ingest_spool_rows: int = Field(
        default=500_000, gt=0, description="Accepted rows of a file kept in memory, then spooled"
    )
    # --- ingest cost flat with history (issue 12) ---
    inbox_chunk_events: int = Field(
        default=50_000, gt=0, description="Pushed events an ingest run reads at a time"
    )
    lake_compact_day_files: int = Field(
        default=16, ge=1, description="An ingest run compacts a touched day with more lake files"
    )
    max_event_age_days: int = Field(
        default=400, ge=1, description="Pushed events older than this are event_too_old"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the `.env` file (if any)."""
        env_file = os.environ.get("TALLYFLOW_ENV_FILE", ".env")
        if not env_file:
            return init_settings, env_settings, file_secret_settings
        if env_file != ".env":
            dotenv_settings = DotEnvSettingsSource(
                settings_cls, env_file=env_file, env_file_encoding="utf-8"
            )
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    # Invoicing (contract 5.1, 5.3)
    invoice_grace_days: int = Field(
        default=3, ge=0, le=366, description="Days after period end before finalize closes it"
    )
    invoice_prefix: str = Field(
        default="INV", pattern=r"^[A-Z][A-Z0-9]{0,9}$", description="Series of invoices"
    )
    credit_note_prefix: str = Field(
        default="CN", pattern=r"^[A-Z][A-Z0-9]{0,9}$", description="Series of credit notes"
    )
    invoice_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "Processes that price a large invoice run in parallel (0: one per CPU core, at"
            " most 8; 1: the run's own process only)"
        ),
    )
    invoice_parallel_min_tenants: int = Field(
        default=20_000,
        ge=1,
        description="Tenants from which an invoice run starts its pricing workers",
    )
    invoice_locale: str = Field(default="en_US", description="Locale of invoice documents")
    seller_name: str = Field(default="tallyflow", description="Seller on invoice documents")
    seller_address: str = Field(default="", description="Seller address (lines split by '\\n')")
    seller_tax_id: str = Field(default="", description="Seller tax/VAT id on documents")
    seller_email: str = Field(default="", description="Seller contact on documents")
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook endpoints on loopback/private addresses (internal receivers)",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key(s) sealing webhook secrets at rest (comma-separated to rotate: the"
            " first encrypts); needed once a webhook endpoint exists"
        ),
    )
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

    def secret_box(self) -> SecretBox:
        """What seals and opens stored secrets; SecretKeyError when the key is unset or bad."""
        from tallyflow.core.secrets import SecretBox  # NOTE: cryptography only when needed

        return SecretBox.from_setting(self.secret_key_text)

    @property
    def secret_key_text(self) -> str | None:
        """TALLYFLOW_SECRET_KEY's value (None when unset)."""
        return self.secret_key.get_secret_value() if self.secret_key else None

    @property
    def prefect_home(self) -> Path:
        return self.home_path / "prefect"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
