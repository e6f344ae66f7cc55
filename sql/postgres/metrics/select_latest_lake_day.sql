-- purpose: the latest usage day with a committed lake file (null when the lake is empty)
SELECT max(usage_date) AS usage_date FROM lake_files
