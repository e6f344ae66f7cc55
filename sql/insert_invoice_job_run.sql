-- purpose: record the start of an invoice run (committed at once, so a crash leaves a trace)
INSERT INTO job_runs (id, job, status, started_at, parameters, flow_run_id)
VALUES (CAST(:run_id AS uuid), :job, 'running', CAST(:started_at AS timestamptz),
        CAST(:parameters AS jsonb), :flow_run_id)
