-- purpose: add a file to the ledger so the same content is never ingested twice
INSERT INTO ingest_files (
    sha256, path, size_bytes, status, reason, rows_read, rows_accepted, rows_duplicate,
    rows_rejected, run_id
) VALUES (
    :sha256, :path, :size_bytes, :status, :reason, :rows_read, :rows_accepted, :rows_duplicate,
    :rows_rejected, :run_id
)
