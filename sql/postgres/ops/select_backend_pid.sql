-- purpose: this session's server process id (the usage lock holder, for the commit fence)
SELECT pg_backend_pid()
