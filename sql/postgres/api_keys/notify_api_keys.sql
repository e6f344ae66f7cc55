-- purpose: tell API processes (LISTEN tallyflow_api_keys) to reload their key cache; delivered on commit
SELECT pg_notify('tallyflow_api_keys', :payload)
