-- purpose: add the run's new events to the key index (psycopg COPY, CSV; in the run's transaction)
COPY event_keys (tenant_id, event_id, metric, quantity_micros, occurred_at) FROM STDIN (FORMAT csv)
