-- purpose: lock a run's job_runs row for its commit and read its status (a later run's fail_interrupted waits on it)
SELECT status FROM job_runs WHERE id = :id FOR UPDATE
