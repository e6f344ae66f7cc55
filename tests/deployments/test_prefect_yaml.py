"""deployments/prefect.yaml: every deployment points at an importable flow whose parameters
match, schedules are valid UTC cron, and tallyflow serves exactly what `prefect deploy` reads."""

from __future__ import annotations

import inspect
import typing
from datetime import date

import pytest
import yaml

from tallyflow.runtime.deployments import PREFECT_YAML, build_deployments, load_flow, load_specs

EXPECTED_SCHEDULES = {
    "nightly-usage": ["30 1 * * *"],
    "intraday-usage": ["*/15 * * * *"],
    "month-end-invoices": ["0 3 1 * *"],
    "finalize-invoices": ["0 4 * * *"],
    "usage-backfill": [],
    "deliver-webhooks": ["* * * * *"],
}

SPECS = load_specs()


def test_the_deployments_are_declared() -> None:
    assert [s.name for s in SPECS] == list(EXPECTED_SCHEDULES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_schedules_are_valid_cron_in_utc(spec) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.schedules import CronSchedule

    assert [s.cron for s in spec.schedules] == EXPECTED_SCHEDULES[spec.name]
    for schedule in spec.schedules:
        assert schedule.timezone == "UTC"
        CronSchedule(cron=schedule.cron, timezone=schedule.timezone)  # raises when invalid


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entrypoint_is_an_importable_flow_whose_parameters_match(spec) -> None:  # type: ignore[no-untyped-def]
    flow = load_flow(spec)
    signature = inspect.signature(flow.fn)
    # Every parameter the YAML sets exists on the flow.
    assert set(spec.parameters) <= set(signature.parameters), spec.parameters
    if spec.schedules:
        # A scheduled run has nobody to fill a form: the YAML's parameters must be a
        # complete, valid set (required ones given, types right).
        flow.validate_parameters(dict(spec.parameters))


def test_backfill_parameters_are_typed_for_the_ui_form() -> None:
    (spec,) = [s for s in SPECS if s.name == "usage-backfill"]
    flow = load_flow(spec)
    hints = typing.get_type_hints(flow.fn)
    signature = inspect.signature(flow.fn)
    assert hints["start"] is date and hints["end"] is date
    assert hints["tenant_ids"] == list[str] | None
    assert hints["regenerate_invoices"] is bool
    assert signature.parameters["tenant_ids"].default is None
    assert signature.parameters["regenerate_invoices"].default is False
    schema = build_deployments([spec])[0]._parameter_openapi_schema.model_dump()
    assert set(schema["required"]) == {"start", "end"}
    assert schema["properties"]["start"]["format"] == "date"


def test_every_deployment_runs_one_at_a_time() -> None:
    for spec in SPECS:
        assert spec.concurrency_limit == 1, spec.name
        assert spec.collision_strategy in {"ENQUEUE", "CANCEL_NEW"}, spec.name


def test_prefect_deploy_accepts_the_file() -> None:
    # NOTE: Prefect's own model of prefect.yaml (what `prefect deploy` validates against).
    from prefect.cli.deploy._models import PrefectYamlModel

    with open(PREFECT_YAML, encoding="utf-8") as handle:
        model = PrefectYamlModel.model_validate(yaml.safe_load(handle))
    assert [d.name for d in model.deployments] == list(EXPECTED_SCHEDULES)
    for deployment in model.deployments:
        assert deployment.work_pool is not None and deployment.work_pool.name == "tallyflow"


def test_served_deployments_carry_the_yaml_settings() -> None:
    deployments = {d.name: d for d in build_deployments()}
    assert set(deployments) == set(EXPECTED_SCHEDULES)
    for spec in SPECS:
        built = deployments[spec.name]
        assert built.parameters == spec.parameters
        assert [s.schedule.cron for s in built.schedules or []] == [  # type: ignore[union-attr]
            s.cron for s in spec.schedules
        ]
        assert built.concurrency_limit == 1
        assert built.concurrency_options is not None
        assert built.concurrency_options.collision_strategy.value == spec.collision_strategy


def test_month_end_leaves_drafts_and_finalize_closes_them() -> None:
    specs = {s.name: s for s in SPECS}
    assert specs["month-end-invoices"].parameters == {"close": False}
    assert specs["finalize-invoices"].entrypoint == "flows/finalize_invoices.py:finalize_invoices"
