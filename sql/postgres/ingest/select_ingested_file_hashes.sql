-- purpose: which of these file contents were already ingested (or quarantined)
SELECT sha256 FROM ingest_files WHERE sha256 = ANY(:hashes)
