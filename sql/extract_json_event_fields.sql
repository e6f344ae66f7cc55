-- purpose: each event field of each JSON line as JSON text (one parse per line), and whether a top-level key repeats
SELECT
    row,
    v,
    coalesce(len(list_distinct(k)) < len(k), false) AS repeated_key
FROM (
    SELECT
        row,
        try(json_extract(text, ['$', '$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties'])) AS v,
        try(json_keys(text)) AS k
    FROM json_lines
)
