-- purpose: is the database reachable and answering (for /readyz)
SELECT 1
