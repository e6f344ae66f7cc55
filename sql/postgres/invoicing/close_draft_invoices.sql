-- purpose: close drafts (by id, or every draft of a period for :tenant_ids): sequential number and closed_at
UPDATE invoices AS i
SET status = 'closed',
    number = 'INV-' || to_char(i.period_start, 'YYYYMM') || '-'
             || lpad(CAST(n.seq AS text), 6, '0'),
    closed_at = CAST(:now AS timestamptz),
    updated_at = CAST(:now AS timestamptz)
FROM (
    -- NOTE: numbers are drawn in tenant order so one run numbers its invoices predictably
    SELECT d.id, nextval('invoice_number_seq') AS seq
    FROM (
        SELECT id FROM invoices
        WHERE status = 'draft'
          AND (CAST(:invoice_ids AS bigint[]) IS NULL OR id = ANY(CAST(:invoice_ids AS bigint[])))
          AND (CAST(:period_start AS date) IS NULL OR period_start = CAST(:period_start AS date))
          AND (CAST(:tenant_ids AS text[]) IS NULL OR tenant_id = ANY(CAST(:tenant_ids AS text[])))
        ORDER BY tenant_id, id
        FOR UPDATE
    ) AS d
) AS n
WHERE i.id = n.id
RETURNING i.id
