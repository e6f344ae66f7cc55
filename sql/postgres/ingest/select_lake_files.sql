-- purpose: the committed lake files, optionally only those of some usage days
SELECT path, usage_date, row_count
FROM lake_files
WHERE CAST(:days AS date[]) IS NULL OR usage_date = ANY(:days)
ORDER BY usage_date, path
