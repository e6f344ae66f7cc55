-- purpose: how many events the key index holds (the manifest's indexed files' rows): sizes the key lookup's plan
SELECT coalesce(sum(row_count), 0) AS events FROM lake_files WHERE keys_indexed
