-- purpose: bulk-load a batch's keys into the scratch table (psycopg COPY, CSV; event_id as \x hex)
COPY batch_keys (position, tenant_id, event_id) FROM STDIN (FORMAT csv)
