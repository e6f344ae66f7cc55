-- purpose: create a plan unless its code exists (no row returned then)
INSERT INTO plans (code, name, currency, base_fee, minimum_commitment)
VALUES (:code, :name, :currency, :base_fee, :minimum_commitment)
ON CONFLICT (code) DO NOTHING
RETURNING id, created_at
