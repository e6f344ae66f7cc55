-- purpose: close the locked drafts with the numbers given to them (ids and numbers in the same order)
UPDATE invoices AS i
SET status = 'closed',
    number = n.number,
    closed_at = CAST(:now AS timestamptz),
    updated_at = CAST(:now AS timestamptz)
FROM unnest(CAST(:invoice_ids AS bigint[]), CAST(:numbers AS text[])) AS n(id, number)
WHERE i.id = n.id
  AND i.status = 'draft'
RETURNING i.id
