-- purpose: record lake files to move to the trash once the run that retired them committed
INSERT INTO lake_files_retired (path, run_id)
SELECT p, :run_id FROM unnest(CAST(:paths AS text[])) AS p
ON CONFLICT (path) DO NOTHING
