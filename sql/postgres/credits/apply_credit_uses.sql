-- purpose: apply every planned credit use of one close at once: take each amount from its locked grant (never below 0), record the applications, write the credit lines, lower the drafts' totals; answers the counts the caller checks
WITH uses AS (
    SELECT *
    FROM unnest(CAST(:grant_ids AS bigint[]), CAST(:invoice_ids AS bigint[]),
                CAST(:amounts AS numeric[]), CAST(:line_nos AS integer[]),
                CAST(:plan_codes AS text[]), CAST(:descriptions AS text[]),
                CAST(:window_starts AS date[]), CAST(:window_ends AS date[]),
                CAST(:breakdowns AS jsonb[]))
         AS u(grant_id, invoice_id, amount, line_no, plan_code, description,
              window_start, window_end, breakdown)
),
per_grant AS (
    SELECT grant_id, SUM(amount) AS amount FROM uses GROUP BY grant_id
),
taken AS (
    UPDATE credit_grants AS g SET remaining = g.remaining - p.amount
    FROM per_grant AS p
    WHERE g.id = p.grant_id AND g.remaining >= p.amount
    RETURNING g.id
),
applied AS (
    INSERT INTO credit_applications (grant_id, invoice_id, amount, applied_at)
    SELECT grant_id, invoice_id, amount, CAST(:now AS timestamptz) FROM uses
    RETURNING id
),
drafts AS (
    SELECT i.id FROM invoices AS i
    WHERE i.id IN (SELECT invoice_id FROM uses) AND i.status = 'draft'
),
lines AS (
    INSERT INTO invoice_lines (invoice_id, line_no, kind, subscription_id, plan_code, metric,
                               description, window_start, window_end, quantity, included,
                               billable_quantity, pricing_model, amount, breakdown)
    SELECT u.invoice_id, u.line_no, 'credit', NULL, u.plan_code, NULL, u.description,
           u.window_start, u.window_end, 1, 0, 1, NULL, -u.amount, u.breakdown
    FROM uses AS u JOIN drafts AS d ON d.id = u.invoice_id
    RETURNING invoice_id
),
totals AS (
    UPDATE invoices AS i SET total = i.total - c.credited
    FROM (SELECT invoice_id, SUM(amount) AS credited FROM uses GROUP BY invoice_id) AS c
    WHERE i.id = c.invoice_id AND i.status = 'draft'
    RETURNING i.id
)
SELECT (SELECT count(*) FROM per_grant) AS grants_used,
       (SELECT count(*) FROM taken) AS grants_taken,
       (SELECT count(*) FROM applied) AS applications,
       (SELECT count(*) FROM lines) AS lines,
       (SELECT count(*) FROM totals) AS invoices
