-- purpose: the day of every index entry whose hash a batch key has (candidates for the exact lookup; psycopg COPY out, CSV)
-- NOTE: a hash may have several entries (two keys of the lake sharing it): each one's day.
COPY (
    SELECT b.position, e.usage_date
    FROM batch_keys AS b
    JOIN event_keys AS e ON e.key_hash = b.key_hash
) TO STDOUT (FORMAT csv)
