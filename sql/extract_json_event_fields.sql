-- purpose: pull each event field's text and JSON type out of JSON lines (one parse per path list)
WITH parsed AS (
    SELECT
        row,
        text,
        try(json_type(text, ['$', '$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties'])) AS t,
        try(json_extract_string(text, ['$', '$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties'])) AS v
    FROM json_lines
)
SELECT
    row,
    coalesce(t[1] = 'OBJECT', false) AS is_object,
    v[2] AS event_id, t[2] AS event_id_type,
    v[3] AS tenant_id, t[3] AS tenant_id_type,
    v[4] AS metric, t[4] AS metric_type,
    -- NOTE: JSON numbers come back re-printed from a double; take the literal as written
    -- when it denotes the same double, so "0.1234567890123456789" stays exact.
    CASE
        WHEN t[5] IN ('DOUBLE', 'BIGINT', 'UBIGINT', 'HUGEINT')
            AND try_cast(regexp_extract(text, '"quantity"\s*:\s*(-?[0-9][0-9.eE+-]*)', 1) AS DOUBLE)
                IS NOT DISTINCT FROM try_cast(v[5] AS DOUBLE)
        THEN regexp_extract(text, '"quantity"\s*:\s*(-?[0-9][0-9.eE+-]*)', 1)
        ELSE v[5]
    END AS quantity,
    t[5] AS quantity_type,
    v[6] AS occurred_at, t[6] AS occurred_at_type,
    v[7] AS properties, t[7] AS properties_type
FROM parsed
