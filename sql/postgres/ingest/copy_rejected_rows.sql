-- purpose: bulk-load a run's rejected rows (psycopg COPY, text format)
COPY rejected_rows (run_id, source, file_sha256, line_no, reason, detail, tenant_id, event_id, raw)
FROM STDIN
