"""Shared route pieces: the tenant path parameter and the UTC clock."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from models.identifiers import TENANT_ID_PATTERN

TenantPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, description="The tenant id")]
