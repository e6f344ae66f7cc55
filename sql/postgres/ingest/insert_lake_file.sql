-- purpose: make a written lake file part of the lake (inside the run's transaction; its keys are indexed with it)
INSERT INTO lake_files (path, usage_date, row_count, run_id, keys_indexed)
VALUES (:path, :usage_date, :row_count, :run_id, true)
