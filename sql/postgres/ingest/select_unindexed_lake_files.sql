-- purpose: manifest files whose keys are not in event_keys yet (listed before migration 0008)
SELECT path FROM lake_files WHERE NOT keys_indexed ORDER BY path
