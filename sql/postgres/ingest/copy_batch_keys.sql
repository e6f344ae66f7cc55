-- purpose: bulk-load a batch's key hashes into the scratch table (psycopg COPY, CSV)
COPY batch_keys (position, key_hash) FROM STDIN (FORMAT csv)
