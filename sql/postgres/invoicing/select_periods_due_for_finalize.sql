-- purpose: periods past their grace days that finalize must refresh and close: with drafts, or with usage aggregated after their last close
SELECT DISTINCT p.period_start, p.period_end
FROM (
    SELECT i.period_start, i.period_end
    FROM invoices AS i
    WHERE i.status = 'draft'
    UNION
    SELECT i.period_start, i.period_end
    FROM invoices AS i
    WHERE i.status = 'closed'
      AND i.kind = 'invoice'
      AND EXISTS (
          SELECT 1
          FROM usage_daily AS u
          WHERE u.tenant_id = i.tenant_id
            AND u.usage_date >= i.period_start
            AND u.usage_date < i.period_end
            AND u.updated_at > (
                SELECT max(c.closed_at)
                FROM invoices AS c
                WHERE c.status = 'closed'
                  AND (c.id = i.id OR c.corrects_invoice_id = i.id)
            )
      )
) AS p
WHERE p.period_end + CAST(:grace_days AS integer) <= CAST(:as_of AS date)
ORDER BY p.period_start
