-- purpose: take the next :count numbers of a series and year (the row lock queues concurrent closes until commit)
INSERT INTO invoice_number_counters AS c (series, year, last_number, updated_at)
VALUES (:series, :year, :count, CAST(:now AS timestamptz))
ON CONFLICT (series, year) DO UPDATE
SET last_number = c.last_number + EXCLUDED.last_number,
    updated_at = EXCLUDED.updated_at
RETURNING c.last_number
