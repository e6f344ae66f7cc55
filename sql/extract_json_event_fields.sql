-- purpose: each event field of each JSON line as JSON text (one parse per line; null when the line is not JSON)
SELECT
    row,
    try(json_extract(text, ['$.event_id', '$.tenant_id', '$.metric', '$.quantity', '$.occurred_at', '$.properties'])) AS v,
    starts_with(ltrim(text), '{') AS braces
FROM json_lines
