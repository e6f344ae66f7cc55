"""Resources a flow or service needs, built from the environment in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from tallyflow.core.db import get_engine
from tallyflow.core.settings import Settings, load_settings


@dataclass(frozen=True)
class Resources:
    """Settings plus the process-wide engine for them. Pass this down; never look it up."""

    settings: Settings
    engine: Engine


def resources_from_env() -> Resources:
    """Flows call this once at their start (their parameters must stay JSON-serialisable)."""
    settings = load_settings()
    return Resources(settings=settings, engine=get_engine(settings))
