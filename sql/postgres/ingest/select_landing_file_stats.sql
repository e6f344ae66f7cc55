-- purpose: the recorded (size, mtime) of landing paths whose content the ledger knows (one lookup per run)
SELECT path, size_bytes, mtime_ns FROM landing_files WHERE path = ANY(:paths)
