"""The crash harness's children run the real flows: they report to the session's Prefect
test server."""

from __future__ import annotations

import pytest

from tests.reliability import harness


@pytest.fixture(autouse=True)
def _children_report_to_the_harness(prefect_api_url: str) -> None:
    harness.PREFECT_API_URL = prefect_api_url
