-- purpose: one metric's events (its event metric, its filters, its time horizon) with the value read, the group and readability
-- NOTE: a property value is read like `quantity`: decimal text or a JSON number, exactly, in
-- micro-units (half-even); the common spelling (up to 13 integer digits and 6 decimals) in
-- SQL, any other through the reference parser quantity_micros_exact (models.events).
-- A filter or group value counts only when the property is a JSON string.
CREATE OR REPLACE TEMP TABLE metric_events AS
WITH picked AS (
    SELECT tenant_id, event_id, at_us, usage_date, quantity_micros, properties,
           json_type(properties, $value_path) AS vt,
           json_extract_string(properties, $value_path) AS vs
    FROM lake_events
    WHERE metric = $event_metric
      AND at_us < $horizon_end_us
      AND ($carries_level OR list_contains($period_starts, date_trunc('month', usage_date)::DATE))
      AND (len($filters) = 0 OR coalesce(list_bool_and(list_transform($filters, lambda f:
              coalesce(json_type(properties, f.path) = 'VARCHAR'
                       AND list_contains(f.vals, json_extract_string(properties, f.path)), false))), true))
),
valued AS (
    SELECT tenant_id, event_id, at_us, usage_date,
           CASE WHEN json_type(properties, $g1) = 'VARCHAR' THEN json_extract_string(properties, $g1) END AS g1,
           CASE WHEN json_type(properties, $g2) = 'VARCHAR' THEN json_extract_string(properties, $g2) END AS g2,
           CASE WHEN json_type(properties, $g3) = 'VARCHAR' THEN json_extract_string(properties, $g3) END AS g3,
           CASE
               WHEN $value_path IS NULL THEN quantity_micros::HUGEINT
               WHEN vt IN ('VARCHAR', 'UBIGINT', 'BIGINT', 'DOUBLE') THEN
                   CASE
                       WHEN regexp_full_match(vs, '[0-9]{1,13}(\.[0-9]{1,6})?')
                           THEN split_part(vs, '.', 1)::HUGEINT * 1000000
                                + rpad(split_part(vs, '.', 2), 6, '0')::HUGEINT
                       ELSE quantity_micros_exact(vs, CASE WHEN vt = 'VARCHAR' THEN 'string' ELSE 'number' END)::HUGEINT
                   END
           END AS value_micros,
           CASE
               WHEN vt IN ('VARCHAR', 'BOOLEAN', 'UBIGINT', 'BIGINT') THEN vs
               WHEN vt = 'DOUBLE' THEN canonical_decimal(vs)
           END AS distinct_value
    FROM picked
)
SELECT tenant_id, event_id, at_us, usage_date, g1, g2, g3, value_micros, distinct_value,
       CASE $aggregation
           WHEN 'count' THEN true
           WHEN 'unique_count' THEN distinct_value IS NOT NULL
           ELSE coalesce(value_micros BETWEEN 0 AND 1000000000000000000, false)
       END AS readable
FROM valued
