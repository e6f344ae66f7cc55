-- purpose: the standing content of each batch key already in the lake (anti-join input; psycopg COPY out, CSV)
COPY (
    SELECT b.position, e.metric, e.quantity_micros,
           CAST(extract(epoch FROM e.occurred_at) * 1000000 AS bigint) AS occurred_us
    FROM batch_keys AS b
    JOIN event_keys AS e ON e.tenant_id = b.tenant_id AND e.event_id = b.event_id
) TO STDOUT (FORMAT csv)
