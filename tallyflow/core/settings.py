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
    invoice_locale: str = Field(default="en_US", description="Locale of invoice documents")
    seller_name: str = Field(default="tallyflow", description="Seller on invoice documents")
    seller_address: str = Field(default="", description="Seller address (lines split by '\\n')")
    seller_tax_id: str = Field(default="", description="Seller tax/VAT id on documents")
    seller_email: str = Field(default="", description="Seller contact on documents")

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
