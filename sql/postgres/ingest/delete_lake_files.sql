-- purpose: take compacted-away files out of the manifest (inside the run's transaction)
DELETE FROM lake_files WHERE path = ANY(:paths)
