-- purpose: all plans (or those with the given :codes), by code
SELECT id, code, name, currency, base_fee, minimum_commitment, created_at
FROM plans
WHERE CAST(:codes AS text[]) IS NULL OR code = ANY(CAST(:codes AS text[]))
ORDER BY code
