-- purpose: each event field of each JSON line as JSON text (one parse per line); null = not an object's field
SELECT
    row,
    try(json_extract(text, ['$', '$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties'])) AS v
FROM json_lines
