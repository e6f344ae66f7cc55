-- purpose: the raw event frame of JSON lines: each field's text and JSON type (one parse per line)
-- NOTE: a field's JSON text tells its type by its first character: '"' string, digit or '-'
-- number (NaN / Infinity literals too, refused later as not finite), '{' object, null =
-- absent, anything else (true, false, [...]) another type. Strings with escapes are decoded.
SELECT
    row,
    coalesce(v IS NOT NULL AND starts_with(ltrim(text), '{'), false) AS is_object,
    CASE WHEN v[1] IS NULL OR v[1] = 'null' THEN NULL
             WHEN v[1][1] = '"' THEN (CASE WHEN contains(v[1], '\') THEN CAST(v[1] AS JSON)->>'$' ELSE v[1][2:-2] END)
             ELSE v[1] END AS event_id,
    CASE WHEN v[1] IS NULL OR v[1] = 'null' THEN NULL
             WHEN v[1][1] = '"' THEN 'string'
             WHEN v[1][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[1]), 'nan|inf') THEN 'number'
             WHEN v[1][1] = '{' THEN 'object'
             ELSE 'other' END AS event_id_type,
    CASE WHEN v[2] IS NULL OR v[2] = 'null' THEN NULL
             WHEN v[2][1] = '"' THEN (CASE WHEN contains(v[2], '\') THEN CAST(v[2] AS JSON)->>'$' ELSE v[2][2:-2] END)
             ELSE v[2] END AS tenant_id,
    CASE WHEN v[2] IS NULL OR v[2] = 'null' THEN NULL
             WHEN v[2][1] = '"' THEN 'string'
             WHEN v[2][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[2]), 'nan|inf') THEN 'number'
             WHEN v[2][1] = '{' THEN 'object'
             ELSE 'other' END AS tenant_id_type,
    CASE WHEN v[3] IS NULL OR v[3] = 'null' THEN NULL
             WHEN v[3][1] = '"' THEN (CASE WHEN contains(v[3], '\') THEN CAST(v[3] AS JSON)->>'$' ELSE v[3][2:-2] END)
             ELSE v[3] END AS metric,
    CASE WHEN v[3] IS NULL OR v[3] = 'null' THEN NULL
             WHEN v[3][1] = '"' THEN 'string'
             WHEN v[3][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[3]), 'nan|inf') THEN 'number'
             WHEN v[3][1] = '{' THEN 'object'
             ELSE 'other' END AS metric_type,
    CASE WHEN v[4] IS NULL OR v[4] = 'null' THEN NULL
             WHEN v[4][1] = '"' THEN (CASE WHEN contains(v[4], '\') THEN CAST(v[4] AS JSON)->>'$' ELSE v[4][2:-2] END)
             ELSE v[4] END AS quantity,
    CASE WHEN v[4] IS NULL OR v[4] = 'null' THEN NULL
             WHEN v[4][1] = '"' THEN 'string'
             WHEN v[4][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[4]), 'nan|inf') THEN 'number'
             WHEN v[4][1] = '{' THEN 'object'
             ELSE 'other' END AS quantity_type,
    CASE WHEN v[5] IS NULL OR v[5] = 'null' THEN NULL
             WHEN v[5][1] = '"' THEN (CASE WHEN contains(v[5], '\') THEN CAST(v[5] AS JSON)->>'$' ELSE v[5][2:-2] END)
             ELSE v[5] END AS occurred_at,
    CASE WHEN v[5] IS NULL OR v[5] = 'null' THEN NULL
             WHEN v[5][1] = '"' THEN 'string'
             WHEN v[5][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[5]), 'nan|inf') THEN 'number'
             WHEN v[5][1] = '{' THEN 'object'
             ELSE 'other' END AS occurred_at_type,
    CASE WHEN v[6] IS NULL OR v[6] = 'null' THEN NULL
             WHEN v[6][1] = '"' THEN (CASE WHEN contains(v[6], '\') THEN CAST(v[6] AS JSON)->>'$' ELSE v[6][2:-2] END)
             ELSE v[6] END AS properties,
    CASE WHEN v[6] IS NULL OR v[6] = 'null' THEN NULL
             WHEN v[6][1] = '"' THEN 'string'
             WHEN v[6][1] IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
                  OR regexp_matches(lower(v[6]), 'nan|inf') THEN 'number'
             WHEN v[6][1] = '{' THEN 'object'
             ELSE 'other' END AS properties_type,
    raw
FROM (
    SELECT
        row,
        text,
        raw,
        try(json_extract(text, ['$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties']))::VARCHAR[] AS v
    FROM json_lines
)
ORDER BY row
