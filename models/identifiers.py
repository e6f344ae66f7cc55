"""Identifier patterns: the one definition each, used by the event rules, the tables'
CHECK constraints, the API schemas and the CLI."""

from __future__ import annotations

import re
from typing import Final

TENANT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
METRIC_PATTERN: Final = r"^[a-z][a-z0-9_.]{0,63}$"
PLAN_CODE_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"

TENANT_ID_RE: Final = re.compile(TENANT_ID_PATTERN)
METRIC_RE: Final = re.compile(METRIC_PATTERN)
PLAN_CODE_RE: Final = re.compile(PLAN_CODE_PATTERN)


def is_tenant_id(value: object) -> bool:
    return isinstance(value, str) and TENANT_ID_RE.fullmatch(value) is not None
