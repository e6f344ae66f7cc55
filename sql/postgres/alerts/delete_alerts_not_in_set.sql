-- purpose: drop a tenant's alerts that the new set (parallel arrays :kinds, :metrics, :thresholds) does not repeat
DELETE FROM alerts AS a
WHERE a.tenant_id = :tenant_id
  AND NOT EXISTS (
      SELECT 1
      FROM unnest(CAST(:kinds AS text[]), CAST(:metrics AS text[]), CAST(:thresholds AS numeric[]))
           AS k(kind, metric, threshold)
      WHERE k.kind = a.kind AND k.metric IS NOT DISTINCT FROM a.metric AND k.threshold = a.threshold
  )
