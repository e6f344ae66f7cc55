"""Preview latency (contract 5.1, issue 15): one tenant with 10 billable metrics of 10
groups each, warm data, N previews.

Run: `flock /work/tools/bench.lock uv run python bench/preview_bench.py [--previews 300]
[--tenants 2000]`.
A fresh embedded Postgres (pgserver), migrated; `--tenants` other tenants share the plan
(so the tables are not trivially small). The plan has 10 quotas, each on a billable metric
grouped by `model` and priced `matrix` (10 entries, one per group, graduated pricing), so
the measured tenant's preview has 10 metrics x 10 groups = 100 usage lines; every tenant
has its metric_usage rows for the month (a total and 10 groups per metric), as an ingest
would have written them. Prints p50/p95/p99 of `preview_invoice` on warm data and the
load average.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _harness
import sqlalchemy as sa

from models.period import BillingPeriod
from services.invoicing import preview_invoice
from tallyflow.core import migrate
from tallyflow.core.db import get_engine, to_sqlalchemy_url
from tallyflow.core.settings import Settings

PERIOD = BillingPeriod.parse("2026-11")
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--previews", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=2000)
    args = parser.parse_args()
    database = contextlib.ExitStack()
    uri = database.enter_context(_harness.throwaway_postgres("tallyflow-bench-preview-"))
    try:
        engine = get_engine(Settings(database_url=to_sqlalchemy_url(uri)))
        migrate.upgrade(engine)
        metrics = [f"metric_{i}" for i in range(10)]
        groups = [f"g{j}" for j in range(10)]
        graduated = {
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_price": "0.01", "flat_fee": "0"},
                {"up_to": None, "unit_price": "0.005", "flat_fee": "0"},
            ],
        }
        matrix = {
            "model": "matrix",
            "prices": [
                {"match": {"model": g}, "included": "10", "pricing": graduated} for g in groups
            ],
            "default": {"included": "0", "pricing": graduated},
        }
        with engine.begin() as conn:
            plan = conn.execute(
                sa.text(
                    "INSERT INTO plans (code, name, currency, base_fee)"
                    " VALUES ('pro', 'Pro', 'USD', 49) RETURNING id"
                )
            ).scalar_one()
            for m in metrics:
                conn.execute(
                    sa.text(
                        "INSERT INTO metrics (code, name, event_metric, aggregation, value,"
                        " filters, group_by) VALUES (:m, :m, :m, 'sum', 'quantity', '{}',"
                        " ARRAY['model'])"
                    ),
                    {"m": m},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO plan_quotas (plan_id, metric, aggregation, included,"
                        " pricing_model, pricing) VALUES (:p, :m, 'sum', 0, 'matrix',"
                        " CAST(:j AS jsonb))"
                    ),
                    {"p": plan, "m": m, "j": json.dumps(matrix)},
                )
            tenants = ["bench", *(f"t{i:05d}" for i in range(args.tenants))]
            conn.execute(
                sa.text(
                    "INSERT INTO subscriptions (tenant_id, plan_id, starts_on)"
                    " SELECT t, :p, DATE '2026-01-01' FROM unnest(CAST(:ts AS text[])) AS t"
                ),
                {"p": plan, "ts": tenants},
            )
            # the month's values: per metric a total ('') and 10 groups of 1234.5 each
            conn.execute(
                sa.text(
                    "INSERT INTO metric_usage (metric_code, tenant_id, period_start,"
                    " window_start, window_end, group_key, group_values, value, as_of)"
                    " SELECT m, t, DATE '2026-11-01', DATE '2026-11-01', DATE '2026-12-01',"
                    " CASE WHEN g IS NULL THEN '' ELSE jsonb_build_object('model', g)::text END,"
                    " CASE WHEN g IS NULL THEN NULL ELSE jsonb_build_object('model', g) END,"
                    " CASE WHEN g IS NULL THEN 12345 ELSE 1234.5 END, :now"
                    " FROM unnest(CAST(:ts AS text[])) AS t, unnest(CAST(:ms AS text[])) AS m,"
                    " unnest(CAST(:gs AS text[])) AS g"
                ),
                {"ts": tenants, "ms": metrics, "gs": [None, *groups], "now": NOW},
            )
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
            for _ in range(20):  # warm up
                preview_invoice(conn, "bench", PERIOD, now=NOW)
                conn.rollback()
            # NOTE: as the API does after loading its snapshot (api/state.py): the warm heap is
            # frozen, so a full collection does not walk it during a request.
            gc.collect()
            gc.freeze()
            laps = []
            for _ in range(args.previews):
                start = time.perf_counter()
                preview = preview_invoice(conn, "bench", PERIOD, now=NOW)
                conn.rollback()
                laps.append((time.perf_counter() - start) * 1000)
        laps.sort()
        p = statistics.quantiles(laps, n=100)
        print(
            f"preview of 1 tenant x {len(metrics)} billable metrics x {len(groups)} groups"
            f" (matrix), {len(tenants)} tenants in the db"
        )
        print(f"lines={len(preview.lines)} total={preview.total} {preview.currency}")
        print(
            f"n={len(laps)} p50={p[49]:.2f} ms p95={p[94]:.2f} ms p99={p[98]:.2f} ms"
            f" max={laps[-1]:.2f} ms (target p99 < 50 ms)"
        )
        usage = [li for li in preview.lines if li.kind == "usage"]
        print(f"usage lines={len(usage)} load average={os.getloadavg()}")
        assert len(usage) == len(metrics) * len(groups)
        assert Decimal(preview.total) > 0
        engine.dispose()
    finally:
        database.close()


if __name__ == "__main__":
    main()
