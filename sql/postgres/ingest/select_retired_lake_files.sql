-- purpose: retired lake files not yet moved to the trash
SELECT path, run_id FROM lake_files_retired ORDER BY path
