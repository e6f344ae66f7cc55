-- purpose: the xmax of the current snapshot: orders reads of the quota snapshot (a later snapshot never has a smaller xmax)
SELECT CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text) AS bigint)
