-- purpose: a tenant's spend cap and its recorded spend (any period: the caller checks period_start)
SELECT c.amount AS cap, s.period_start, s.currency, s.amount AS spend, s.as_of
FROM (SELECT CAST(:tenant_id AS text) AS tenant_id) AS t
LEFT JOIN spend_caps AS c ON c.tenant_id = t.tenant_id
LEFT JOIN tenant_spend AS s ON s.tenant_id = t.tenant_id
