"""Schemathesis against the app's own OpenAPI (issue 6 item 4), on a small budget: for
every operation, generated requests never get a 500 and every answer matches the schema
(status codes, content type, body). A longer run is documented in RELIABILITY.md."""

from __future__ import annotations

import os

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Keys

BUDGET = int(os.environ.get("TALLYFLOW_SCHEMATHESIS_EXAMPLES", "8"))


def test_every_operation_conforms(client: TestClient, keys: Keys) -> None:
    # NOTE: the schema comes from the app under test, inside its lifespan (snapshot,
    # listener); each operation gets its own Hypothesis run.
    api = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=BUDGET,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {keys.admin}"},
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

        conforms()
