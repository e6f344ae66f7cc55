-- purpose: the raw event frame of JSON lines `json_lines` (row, text): each field's text and JSON type, one parse per line
-- NOTE: a field's JSON text tells its type by its first character: '"' string, '{' object,
-- 't', 'f', '[' another type (true, false, array), else a number (NaN and Infinity too,
-- refused later as not finite); JSON null is absent. Strings with escapes are decoded.
-- DuckDB prints a JSON number back from a double: where that could change the quantity's
-- value at 6 decimals (an exponent, more than 6 decimals, 10 or more integer digits: never
-- in 7 characters or fewer, unless an exponent), the
-- literal as written is taken from the line when it denotes the same double.
-- NOTE: a repeated top-level key makes the row ambiguous: it is never billed (is_object is
-- false, so malformed_row). Only a line with more keys than event fields can repeat one,
-- so only those lines pay for the exact check.
WITH parsed AS (
    SELECT
        row,
        text,
        try(json_keys(text)) AS k,
        try(json_transform(text, '{"event_id": "JSON", "tenant_id": "JSON", "metric": "JSON", "quantity": "JSON", "occurred_at": "JSON", "properties": "JSON"}')) AS v
    FROM json_lines
),
fields AS (
    SELECT
        row,
        text,
        k,
        coalesce(v IS NOT NULL AND starts_with(ltrim(text), '{'), false) AS parsed_object,
        CAST(v.event_id AS VARCHAR) AS j_event_id,
        CAST(v.tenant_id AS VARCHAR) AS j_tenant_id,
        CAST(v.metric AS VARCHAR) AS j_metric,
        CAST(v.quantity AS VARCHAR) AS j_quantity,
        CAST(v.occurred_at AS VARCHAR) AS j_occurred_at,
        CAST(v.properties AS VARCHAR) AS j_properties
    FROM parsed
)
SELECT
    row,
    parsed_object AND NOT coalesce(
        CASE
            WHEN len(k) > (j_event_id IS NOT NULL)::INT + (j_tenant_id IS NOT NULL)::INT + (j_metric IS NOT NULL)::INT
                          + (j_quantity IS NOT NULL)::INT + (j_occurred_at IS NOT NULL)::INT + (j_properties IS NOT NULL)::INT
                THEN len(list_distinct(k)) < len(k)
        END,
        false
    ) AS is_object,
    CASE WHEN starts_with(j_event_id, '"') THEN (CASE WHEN contains(j_event_id, '\') THEN CAST(j_event_id AS JSON)->>'$' ELSE j_event_id[2:-2] END) ELSE j_event_id END AS event_id,
    CASE WHEN j_event_id IS NULL THEN NULL WHEN starts_with(j_event_id, '"') THEN 'string' WHEN starts_with(j_event_id, '{') THEN 'object'
         WHEN (starts_with(j_event_id, 't') OR starts_with(j_event_id, 'f') OR starts_with(j_event_id, '[')) THEN 'other' ELSE 'number' END AS event_id_type,
    CASE WHEN starts_with(j_tenant_id, '"') THEN (CASE WHEN contains(j_tenant_id, '\') THEN CAST(j_tenant_id AS JSON)->>'$' ELSE j_tenant_id[2:-2] END) ELSE j_tenant_id END AS tenant_id,
    CASE WHEN j_tenant_id IS NULL THEN NULL WHEN starts_with(j_tenant_id, '"') THEN 'string' WHEN starts_with(j_tenant_id, '{') THEN 'object'
         WHEN (starts_with(j_tenant_id, 't') OR starts_with(j_tenant_id, 'f') OR starts_with(j_tenant_id, '[')) THEN 'other' ELSE 'number' END AS tenant_id_type,
    CASE WHEN starts_with(j_metric, '"') THEN (CASE WHEN contains(j_metric, '\') THEN CAST(j_metric AS JSON)->>'$' ELSE j_metric[2:-2] END) ELSE j_metric END AS metric,
    CASE WHEN j_metric IS NULL THEN NULL WHEN starts_with(j_metric, '"') THEN 'string' WHEN starts_with(j_metric, '{') THEN 'object'
         WHEN (starts_with(j_metric, 't') OR starts_with(j_metric, 'f') OR starts_with(j_metric, '[')) THEN 'other' ELSE 'number' END AS metric_type,
    CASE
        WHEN starts_with(j_quantity, '"') THEN (CASE WHEN contains(j_quantity, '\') THEN CAST(j_quantity AS JSON)->>'$' ELSE j_quantity[2:-2] END)
        WHEN (contains(j_quantity, 'e') OR contains(j_quantity, 'E')
              OR (length(j_quantity) > 7 AND (length(split_part(j_quantity, '.', 2)) > 6 OR length(split_part(j_quantity, '.', 1)) > 9)))
             AND NOT starts_with(j_quantity, '{') AND NOT starts_with(j_quantity, '[')
             AND TRY_CAST(regexp_extract(text, '"quantity"\s*:\s*(-?[0-9][0-9.eE+-]*)', 1) AS DOUBLE) = TRY_CAST(j_quantity AS DOUBLE)
            THEN regexp_extract(text, '"quantity"\s*:\s*(-?[0-9][0-9.eE+-]*)', 1)
        ELSE j_quantity
    END AS quantity,
    CASE WHEN j_quantity IS NULL THEN NULL WHEN starts_with(j_quantity, '"') THEN 'string' WHEN starts_with(j_quantity, '{') THEN 'object'
         WHEN (starts_with(j_quantity, 't') OR starts_with(j_quantity, 'f') OR starts_with(j_quantity, '[')) THEN 'other' ELSE 'number' END AS quantity_type,
    CASE WHEN starts_with(j_occurred_at, '"') THEN (CASE WHEN contains(j_occurred_at, '\') THEN CAST(j_occurred_at AS JSON)->>'$' ELSE j_occurred_at[2:-2] END) ELSE j_occurred_at END AS occurred_at,
    CASE WHEN j_occurred_at IS NULL THEN NULL WHEN starts_with(j_occurred_at, '"') THEN 'string' WHEN starts_with(j_occurred_at, '{') THEN 'object'
         WHEN (starts_with(j_occurred_at, 't') OR starts_with(j_occurred_at, 'f') OR starts_with(j_occurred_at, '[')) THEN 'other' ELSE 'number' END AS occurred_at_type,
    CASE WHEN starts_with(j_properties, '"') THEN (CASE WHEN contains(j_properties, '\') THEN CAST(j_properties AS JSON)->>'$' ELSE j_properties[2:-2] END) ELSE j_properties END AS properties,
    CASE WHEN j_properties IS NULL THEN NULL WHEN starts_with(j_properties, '"') THEN 'string' WHEN starts_with(j_properties, '{') THEN 'object'
         WHEN (starts_with(j_properties, 't') OR starts_with(j_properties, 'f') OR starts_with(j_properties, '[')) THEN 'other' ELSE 'number' END AS properties_type
FROM fields
