-- purpose: the key lookup's plan, for its transaction: one index probe per batch key, in the batch's hash order
-- NOTE: a hash join scans the whole index at every batch (500k keys against a 10M index:
-- 1.8-2.9 s); probes in hash order walk the index's leaves in order (0.6 s, and 0.44 s
-- against 2M: flat with the lake's size). bench/README.md, "Key index".
SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)
