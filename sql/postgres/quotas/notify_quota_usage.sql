-- purpose: tell API processes (LISTEN tallyflow_quota_usage) which tenants' quota rows changed; delivered on commit
SELECT pg_notify('tallyflow_quota_usage', :payload)
