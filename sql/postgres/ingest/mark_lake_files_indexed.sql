-- purpose: record that these manifest files' keys are in event_keys
UPDATE lake_files SET keys_indexed = true WHERE path = ANY(:paths)
