-- purpose: the raw event frame of JSON lines `json_lines` (row, text): each field's text and JSON type, one parse per line
-- NOTE: each field's text and type tag come from the macros json_text and json_kind
-- (sql/create_json_*_macro.sql); JSON null is absent.
-- DuckDB prints a JSON number back from a double: where that could change the quantity's
-- value at 6 decimals (an exponent, more than 6 decimals, 10 or more integer digits: never
-- in 7 characters or fewer, unless an exponent), the
-- literal as written is taken from the line: the event's own top-level `quantity`, by the
-- reference UDF quantity_literal (models/events/parsers.py; never a `quantity` key inside
-- `properties`).
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
    json_text(j_event_id) AS event_id,
    json_kind(j_event_id) AS event_id_type,
    json_text(j_tenant_id) AS tenant_id,
    json_kind(j_tenant_id) AS tenant_id_type,
    json_text(j_metric) AS metric,
    json_kind(j_metric) AS metric_type,
    CASE
        WHEN (contains(j_quantity, 'e') OR contains(j_quantity, 'E')
              OR (length(j_quantity) > 7 AND (length(split_part(j_quantity, '.', 2)) > 6 OR length(split_part(j_quantity, '.', 1)) > 9)))
             AND json_kind(j_quantity) = 'number'
            THEN coalesce(quantity_literal(text), j_quantity)
        ELSE json_text(j_quantity)
    END AS quantity,
    json_kind(j_quantity) AS quantity_type,
    json_text(j_occurred_at) AS occurred_at,
    json_kind(j_occurred_at) AS occurred_at_type,
    json_text(j_properties) AS properties,
    json_kind(j_properties) AS properties_type
FROM fields
