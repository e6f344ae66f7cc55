-- purpose: the invoice run's snapshot id, which its pricing workers import (valid while the run's transaction lasts)
SELECT pg_export_snapshot()
