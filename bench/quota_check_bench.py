"""Benchmark: quota checks per second and latency, on real data, over loopback.

    uv run python bench/quota_check_bench.py [--tenants 10000] [--connections 16]
                                             [--duration 20] [--database-url URL]

1. Seeds a fresh database (embedded Postgres in a temp folder unless --database-url):
   one plan with 5 metrics, N tenants subscribed since the 1st of the month, 5 days of
   usage_daily per tenant and metric, then ONE refresh_quota_usage (timed) -> N x 5 rows
   in quota_usage.
2. Starts the API as `tallyflow serve` does (uvicorn, one process, uvloop + httptools) and
   checks a few answers for correctness.
3. Drives POST .../quotas:check for random tenants and metrics with wrk (Debian package
   `wrk`; the load generator shares the 2 cores with the server) at a fixed number of
   connections, and prints requests/s and p50/p90/p99 latency.
4. For scale, the same load on a bare FastAPI endpoint answering a constant, in the same
   conditions (the machine is shared: compare the two, not just the absolute figures).
5. Measures freshness: the delay between an aggregation run's commit in another process
   and the API answering with the new `used` (LISTEN/NOTIFY), and checks that a change
   made through the API is visible to the very next check.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _harness  # noqa: E402  (bench/ is on sys.path: the script's folder)

from models.period import BillingPeriod  # noqa: E402
from services.api_keys import create_api_key  # noqa: E402
from services.quota import refresh_quota_usage  # noqa: E402
from tallyflow.core import migrate  # noqa: E402
from tallyflow.core.clock import utc_today  # noqa: E402
from tallyflow.core.db import dispose_engines, get_engine, to_sqlalchemy_url  # noqa: E402
from tallyflow.core.settings import Settings  # noqa: E402

METRICS = ["api_calls", "storage_gb", "seats", "egress_gb", "jobs"]

# NOTE: bench-only seeding SQL stays here (it is not part of the product's sql/).
SEED_PLAN = """
INSERT INTO plans (code, name, currency, base_fee) VALUES ('bench', 'Bench', 'USD', 10)
RETURNING id
"""
SEED_QUOTAS = """
INSERT INTO plan_quotas (plan_id, metric, aggregation, included, "limit", enforcement,
                         pricing_model, pricing)
SELECT :plan_id, m, CASE WHEN m = 'storage_gb' THEN 'max' WHEN m = 'seats' THEN 'count'
                         ELSE 'sum' END,
       0, CASE WHEN m = 'jobs' THEN NULL ELSE 5000 END,
       CASE WHEN m = 'egress_gb' THEN 'soft' ELSE 'hard' END,
       'per_unit', '{"model": "per_unit", "unit_price": "0.001"}'::jsonb
FROM unnest(CAST(:metrics AS text[])) AS m
"""
SEED_SUBSCRIPTIONS = """
INSERT INTO subscriptions (tenant_id, plan_id, starts_on)
SELECT 't' || lpad(i::text, 5, '0'), :plan_id, :starts_on FROM generate_series(0, :n - 1) AS i
"""
SEED_USAGE = """
INSERT INTO usage_daily (tenant_id, metric, usage_date, quantity_sum, event_count, quantity_max,
                         first_occurred_at, last_occurred_at)
SELECT 't' || lpad(i::text, 5, '0'), m, d::date, (i % 997) + 0.5, 1 + i % 50, (i % 97) + 0.25,
       d, d + interval '1 hour'
FROM generate_series(0, :n - 1) AS i,
     unnest(CAST(:metrics AS text[])) AS m,
     generate_series(CAST(:first_day AS date), CAST(:today AS date), interval '1 day') AS d
"""

WRK_SCRIPT = """
local key = "%(key)s"
local metrics = {"api_calls", "storage_gb", "seats", "egress_gb", "jobs"}
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
local n = %(tenants)d
local counter = 0
request = function()
  counter = counter + 1
  local t = math.random(0, n - 1)
  local m = metrics[math.random(1, #metrics)]
  local body = '{"metric":"' .. m .. '","quantity":"' .. (counter %% 7) .. '"}'
  return wrk.format("POST", string.format("/api/billing/tenants/t%%05d/quotas:check", t),
                    headers, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def seed(settings: Settings, tenants: int) -> dict[str, object]:
    engine = get_engine(settings)
    migrate.upgrade(engine)
    today = utc_today()
    start, _ = BillingPeriod.of(today).bounds
    first_day = max(start, today - dt.timedelta(days=4))
    t0 = time.perf_counter()
    with engine.begin() as conn:
        plan_id = conn.execute(sa.text(SEED_PLAN)).scalar_one()
        conn.execute(sa.text(SEED_QUOTAS), {"plan_id": plan_id, "metrics": METRICS})
        conn.execute(
            sa.text(SEED_SUBSCRIPTIONS), {"plan_id": plan_id, "starts_on": start, "n": tenants}
        )
        conn.execute(
            sa.text(SEED_USAGE),
            {"n": tenants, "metrics": METRICS, "first_day": first_day, "today": today},
        )
        usage_rows = conn.execute(sa.text("SELECT count(*) FROM usage_daily")).scalar_one()
    seeded = time.perf_counter() - t0
    with engine.begin() as conn:
        t1 = time.perf_counter()
        refreshed = refresh_quota_usage(conn, today=today, as_of=dt.datetime.now(dt.UTC))
        refresh_s = time.perf_counter() - t1
        read = create_api_key(conn, name="bench-read", scopes=["billing.read"]).key
        write = create_api_key(conn, name="bench-write", scopes=["billing.write"]).key
        rows = conn.execute(sa.text("SELECT count(*) FROM quota_usage")).scalar_one()
    return {
        "usage_daily_rows": usage_rows,
        "quota_usage_rows": rows,
        "refreshed": refreshed,
        "seed_s": round(seeded, 2),
        "refresh_all_s": round(refresh_s, 2),
        "read_key": read,
        "write_key": write,
    }


def bare_app() -> Any:
    """The floor: a FastAPI app whose POST answers a constant (no auth, no body)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/api/billing/tenants/{tenant_id}/quotas:check")
    async def constant(tenant_id: str) -> dict[str, bool]:
        return {"allowed": True}

    return app


def start_api(url: str, port: int, factory: str = "api.app:create_app") -> subprocess.Popen[bytes]:
    env = {**os.environ, "TALLYFLOW_DATABASE_URL": url, "PYTHONPATH": str(ROOT / "bench")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the API did not start")


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(
    port: int, key: str, tenants: int, connections: int, duration: int
) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"key": key, "tenants": tenants})
    threads = min(2, connections)
    # NOTE: a short warm-up first, so the numbers are of the steady state.
    subprocess.run(
        ["wrk", "-t1", "-c4", "-d3s", "-s", script.name, f"http://127.0.0.1:{port}"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(script.name)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, flags=re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "tool": f"wrk ({threads} threads, {connections} connections, {duration} s)",
        "requests_per_s": round(rps),
        "p50_ms": to_ms(pct["50"]),
        "p90_ms": to_ms(pct["90"]),
        "p99_ms": to_ms(pct["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1) if sock else None,
        "raw": out,
    }


def check_answers(base: str, read: str, write: str) -> None:
    auth = {"Authorization": f"Bearer {read}"}
    with httpx.Client(base_url=base, headers=auth) as client:
        body = client.post(
            "/api/billing/tenants/t00042/quotas:check", json={"metric": "api_calls"}
        ).json()
        assert body["limit"] == "5000" and body["reason"] in ("within_limit", "over_limit"), body
        assert Decimal(body["used"]) > 0 and body["as_of"] is not None, body
        unlimited = client.post(
            "/api/billing/tenants/t00042/quotas:check", json={"metric": "jobs"}
        ).json()
        assert unlimited["reason"] == "unlimited", unlimited
        nobody = client.post(
            "/api/billing/tenants/nobody/quotas:check", json={"metric": "jobs"}
        ).json()
        assert nobody["reason"] == "no_subscription", nobody
        other = client.post(
            "/api/billing/tenants/t00042/quotas:check", json={"metric": "gpu"}
        ).json()
        assert other["reason"] == "not_entitled", other
        # a change through the API is visible to the very next check
        put = client.put(
            "/api/billing/tenants/t00042/quotas/overrides",
            json={"overrides": [{"metric": "api_calls", "limit": "123456"}]},
            headers={"Authorization": f"Bearer {write}"},
        )
        assert put.status_code == 200, put.text
        after = client.post(
            "/api/billing/tenants/t00042/quotas:check", json={"metric": "api_calls"}
        ).json()
        assert after["limit"] == "123456", after


def notify_latency(settings: Settings, base: str, read: str, samples: int = 20) -> list[float]:
    """Commit an aggregation (usage + refresh) in this process; time until the API shows it."""
    engine = get_engine(settings)
    today = utc_today()
    delays: list[float] = []
    auth = {"Authorization": f"Bearer {read}"}
    with httpx.Client(base_url=base, headers=auth) as client:
        for i in range(samples):
            tenant = f"t{i:05d}"
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE usage_daily SET event_count = event_count + 1000"
                        " WHERE tenant_id = :t AND metric = 'seats' AND usage_date = :d"
                    ),
                    {"t": tenant, "d": today},
                )
                expected = conn.execute(
                    sa.text(
                        "SELECT sum(event_count) FROM usage_daily"
                        " WHERE tenant_id = :t AND metric = 'seats'"
                    ),
                    {"t": tenant},
                ).scalar_one()
                refresh_quota_usage(
                    conn, today=today, as_of=dt.datetime.now(dt.UTC), tenant_ids=[tenant]
                )
            committed = time.perf_counter()
            while True:
                body = client.post(
                    f"/api/billing/tenants/{tenant}/quotas:check", json={"metric": "seats"}
                ).json()
                if Decimal(body["used"]) == expected:
                    delays.append((time.perf_counter() - committed) * 1000)
                    break
                if time.perf_counter() - committed > 5:
                    raise SystemExit(f"the API did not see the refresh of {tenant} in 5 s")
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: embedded, temporary")
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false", help="skip the bare-stack run"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    home = Path(tempfile.mkdtemp(prefix="tallyflow-bench-"))
    home.chmod(0o755)  # the embedded server runs as its own user when we are root
    # NOTE: a throwaway server (deleted at the end), not TALLYFLOW_HOME's embedded one.
    database = contextlib.ExitStack()
    url = to_sqlalchemy_url(
        args.database_url
        or database.enter_context(_harness.throwaway_postgres("tallyflow-bench-quota-"))
    )
    settings = Settings(home=home, database_url=url)
    print(f"seeding {args.tenants} tenants x {len(METRICS)} metrics ...", file=sys.stderr)
    seeded = seed(settings, args.tenants)
    port = free_port()
    proc = start_api(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        check_answers(base, str(seeded["read_key"]), str(seeded["write_key"]))
        load = run_wrk(port, str(seeded["read_key"]), args.tenants, args.connections, args.duration)
        delays = sorted(notify_latency(settings, base, str(seeded["read_key"])))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    floor: dict[str, object] = {}
    if args.baseline:
        port = free_port()
        proc = start_api(url, port, factory="quota_check_bench:bare_app")
        try:
            floor = run_wrk(port, "-", args.tenants, args.connections, args.duration)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        print(floor.pop("raw"), file=sys.stderr)
    raw = load.pop("raw")
    print(raw, file=sys.stderr)
    result = {
        **{k: v for k, v in seeded.items() if not str(k).endswith("_key")},
        **load,
        "notify_visible_ms_p50": round(delays[len(delays) // 2], 1),
        "notify_visible_ms_max": round(delays[-1], 1),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        **{f"bare_fastapi_{k}": v for k, v in floor.items() if k != "tool"},
    }
    print(json.dumps(result, indent=2))
    dispose_engines()
    database.close()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
