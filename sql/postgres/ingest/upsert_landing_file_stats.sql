-- purpose: remember the (size, mtime) of landing paths whose content is in the ledger
INSERT INTO landing_files (path, size_bytes, mtime_ns, sha256)
SELECT t.path, t.size_bytes, t.mtime_ns, t.sha256
FROM unnest(
    CAST(:paths AS text[]), CAST(:sizes AS bigint[]), CAST(:mtimes AS bigint[]),
    CAST(:hashes AS text[])
) AS t(path, size_bytes, mtime_ns, sha256)
ON CONFLICT (path) DO UPDATE
SET size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256
