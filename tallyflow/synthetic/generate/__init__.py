"""Deterministic synthetic usage logs: the demo's, the tests' and the benchmarks' input.

Plain typed functions, no Prefect. Every column is built with numpy / Polars vector
operations (no Python loop per event): 2,000,000 events take a few seconds.

What a run produces (all from one seed; byte-identical on a rerun for a past month):

- tenants with Zipf-like volumes, five metrics, a month of UTC instants rendered as
  RFC 3339 with `Z`, with offsets (some crossing UTC midnight or the month's edges) or
  as epoch seconds; quantities as JSON numbers or numeric strings with up to 6
  decimals; optional `properties` objects; some event ids shared across tenants and
  some exactly 128 characters long (both valid);
- optional shares of exact duplicates and conflicting duplicates (always after their
  original in file order), late events (a separate file dated after the rest, for
  earlier days) and each kind of bad row of the contract (section 2);
- an oracle: per (tenant_id, metric, usage_date) the exact sum (decimal text), count,
  max and first/last occurred_at of the accepted events, computed from the generator's
  own integer micro-units, never by the ingest code.

How: a narrow numeric plan of every row is drawn first (tenant, metric, instant,
micro-units, rendering styles, kind); copies copy plan rows, so rendering the plan as
text, file by file, gives byte-identical duplicates. Memory stays near the plan's size
(about 50 bytes a row) plus one file's text.

`events` is the total number of rows written (bad, duplicate and late rows included).
`now` only matters for the current month: accepted instants stop at the start of the
current hour, so none is in the future at ingest.

Modules, in the order a run uses them: `spec` (formats, kinds, `UsageSpec`,
`GenerateSummary`, tenant ids), `plan` (the numeric plan), `render` (plan to text),
`oracle` (the expected usage_daily rows), `files` (`generate_events_frame`,
`generate_usage`). Every public name is importable from this package.
"""

from __future__ import annotations

from tallyflow.synthetic.generate.files import (
    generate_events_frame,
    generate_usage,
)
from tallyflow.synthetic.generate.oracle import (
    compute_oracle,
    oracle_sums,
    read_oracle,
    write_oracle,
)
from tallyflow.synthetic.generate.plan import (
    Array,
)
from tallyflow.synthetic.generate.spec import (
    ACCEPTED_KINDS,
    BAD_KINDS,
    BILLABLE_MODELS,
    BILLABLE_REGIONS,
    BILLABLE_USERS,
    FIELDS,
    FORMATS,
    KINDS,
    MAX_EVENT_ID_CHARS,
    METRICS,
    MICROS,
    REQUIRED_FIELDS,
    FilesBy,
    Format,
    GenerateError,
    GenerateSummary,
    UsageSpec,
    event_id_prefix,
    parse_month,
    tenant_ids,
    time_window,
)

__all__ = [
    "ACCEPTED_KINDS",
    "BAD_KINDS",
    "BILLABLE_MODELS",
    "BILLABLE_REGIONS",
    "BILLABLE_USERS",
    "FIELDS",
    "FORMATS",
    "KINDS",
    "MAX_EVENT_ID_CHARS",
    "METRICS",
    "MICROS",
    "REQUIRED_FIELDS",
    "Array",
    "FilesBy",
    "Format",
    "GenerateError",
    "GenerateSummary",
    "UsageSpec",
    "compute_oracle",
    "event_id_prefix",
    "generate_events_frame",
    "generate_usage",
    "oracle_sums",
    "parse_month",
    "read_oracle",
    "tenant_ids",
    "time_window",
    "write_oracle",
]
