-- purpose: the lake events the billable metrics of a refresh read (their event metrics, optionally some tenants), once
CREATE OR REPLACE TEMP TABLE lake_events AS
SELECT tenant_id, event_id, metric, epoch_us(occurred_at) AS at_us, usage_date,
       quantity_micros, properties
FROM read_parquet($files)
WHERE list_contains($event_metrics, metric)
  AND ($tenants IS NULL OR list_contains($tenants, tenant_id))
