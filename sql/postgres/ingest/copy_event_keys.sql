-- purpose: add the run's new events to the key index (psycopg COPY, CSV: key hash, day; in the run's transaction)
COPY event_keys (key_hash, usage_date) FROM STDIN (FORMAT csv)
