-- purpose: make a written lake file part of the lake (inside the run's transaction)
INSERT INTO lake_files (path, usage_date, row_count, run_id)
VALUES (:path, :usage_date, :row_count, :run_id)
