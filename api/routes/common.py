"""Shared route pieces: the tenant path parameter and the UTC clock."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path
from models.identifiers import TENANT_ID_PATTERN as TENANT_ID_RE

TenantPath = Annotated[str, Path(pattern=TENANT_ID_RE, description="The tenant id")]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
