"""The Prefect deployments, built from deployments/prefect.yaml (the one source of truth).

`tallyflow up` serves them with `prefect.serve` in a child process:
`python -m tallyflow.runtime.deployments`. A team with workers elsewhere deploys the same file with
`prefect deploy` instead (docs/RUNNING.md).

NOTE: Prefect is imported inside functions only; reading the specs stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"


class DeploymentSpecError(ValueError):
    """prefect.yaml declares something tallyflow cannot serve."""

    code = "invalid_deployment_spec"


@dataclass(frozen=True)
class CronSpec:
    cron: str
    timezone: str
    active: bool = True


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of `deployments:` in prefect.yaml, as far as serving it needs."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[CronSpec, ...] = ()
    concurrency_limit: int | None = None
    collision_strategy: str | None = None

    @property
    def module(self) -> str:
        """`flows/ingest_usage.py:ingest_usage` -> `flows.ingest_usage`."""
        path = self.entrypoint.split(":", 1)[0]
        return path.removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":", 1)[1]


def load_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Read the deployments declared in prefect.yaml."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    return [_parse_spec(raw) for raw in document.get("deployments") or []]


def _parse_spec(raw: dict[str, Any]) -> DeploymentSpec:
    name = raw.get("name")
    entrypoint = raw.get("entrypoint")
    if not name or not entrypoint or ":" not in entrypoint:
        raise DeploymentSpecError(f"deployment needs a name and a file.py:function: {raw!r}")
    schedules = []
    for schedule in raw.get("schedules") or []:
        if set(schedule) - {"cron", "timezone", "active"} or "cron" not in schedule:
            raise DeploymentSpecError(f"{name}: only cron schedules are supported: {schedule!r}")
        schedules.append(
            CronSpec(
                cron=schedule["cron"],
                timezone=schedule.get("timezone", "UTC"),
                active=bool(schedule.get("active", True)),
            )
        )
    limit = raw.get("concurrency_limit")
    strategy = None
    if isinstance(limit, dict):
        strategy = limit.get("collision_strategy")
        limit = limit.get("limit")
    return DeploymentSpec(
        name=name,
        entrypoint=entrypoint,
        description=raw.get("description"),
        tags=tuple(raw.get("tags") or ()),
        parameters=dict(raw.get("parameters") or {}),
        schedules=tuple(schedules),
        concurrency_limit=limit,
        collision_strategy=strategy,
    )


def load_flow(spec: DeploymentSpec) -> Flow[Any, Any]:
    """Import the flow a deployment points at."""
    from prefect import Flow

    module = importlib.import_module(spec.module)
    flow = getattr(module, spec.function, None)
    if not isinstance(flow, Flow):
        raise DeploymentSpecError(f"{spec.name}: {spec.entrypoint} is not a Prefect flow")
    return flow


def to_deployment_kwargs(spec: DeploymentSpec) -> dict[str, Any]:
    """The `flow.to_deployment(...)` arguments for a spec: schedules, parameters, limits."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    concurrency: ConcurrencyLimitConfig | None = None
    if spec.concurrency_limit is not None:
        concurrency = ConcurrencyLimitConfig(
            limit=spec.concurrency_limit,
            collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy or "ENQUEUE"),
        )
    return {
        "name": spec.name,
        "description": spec.description,
        "tags": list(spec.tags),
        "parameters": spec.parameters,
        "schedules": [Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules],
        "concurrency_limit": concurrency,
        # NOTE: module path (flows.ingest_usage.ingest_usage), not a file path, so the
        # served runs import the installed package whatever the working directory.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }


def build_deployment(spec: DeploymentSpec) -> RunnerDeployment:
    """The runner deployment of a spec (call from sync code; `abuild_deployment` in async)."""
    deployment = load_flow(spec).to_deployment(**to_deployment_kwargs(spec))
    assert not inspect.isawaitable(deployment), "use abuild_deployment in async code"
    return deployment


async def abuild_deployment(spec: DeploymentSpec) -> RunnerDeployment:
    """`build_deployment` for async code (Prefect's to_deployment is async-dispatched)."""
    return await load_flow(spec).ato_deployment(**to_deployment_kwargs(spec))


def build_deployments(specs: Sequence[DeploymentSpec] | None = None) -> list[RunnerDeployment]:
    return [build_deployment(spec) for spec in (specs if specs is not None else load_specs())]


def serve_deployments() -> None:
    """Serve every deployment of prefect.yaml from this process until interrupted."""
    from prefect import serve

    serve(*build_deployments(), print_starting_message=True)


if __name__ == "__main__":
    serve_deployments()
