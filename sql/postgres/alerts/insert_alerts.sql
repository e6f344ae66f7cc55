-- purpose: add the alerts of the new set that the tenant does not have yet (kept ones keep their triggers)
INSERT INTO alerts (tenant_id, kind, metric, threshold, created_at)
SELECT :tenant_id, k.kind, k.metric, k.threshold, :now
FROM unnest(CAST(:kinds AS text[]), CAST(:metrics AS text[]), CAST(:thresholds AS numeric[]))
     AS k(kind, metric, threshold)
ON CONFLICT ON CONSTRAINT uq_alerts_definition DO NOTHING
