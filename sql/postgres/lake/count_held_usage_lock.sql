-- purpose: is the usage advisory lock (one bigint key) held, granted, by session :pid
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid = :pid
  AND classid = CAST((CAST(:key AS bigint) >> 32) AS oid)
  AND objid = CAST((CAST(:key AS bigint) & 4294967295) AS oid)
  AND objsubid = 1
