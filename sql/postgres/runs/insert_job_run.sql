-- purpose: record the start of a job run (committed at once, so a crash leaves a trace)
INSERT INTO job_runs (id, job, status, parameters, flow_run_id)
VALUES (:id, :job, 'running', CAST(:parameters AS jsonb), :flow_run_id)
