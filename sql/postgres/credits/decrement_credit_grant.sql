-- purpose: take :amount from a locked grant (never below 0: no row when it would overdraw)
UPDATE credit_grants SET remaining = remaining - :amount
WHERE id = :grant_id AND remaining >= :amount
RETURNING remaining
