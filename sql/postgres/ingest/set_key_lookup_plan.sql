-- purpose: the key lookup's plan, for its transaction: one index probe per batch key, in the batch's hash order
-- NOTE: set when the index holds many more keys than the batch (dedupe.KeyIndex.probes):
-- the planner's hash join scans the whole index at every batch (500k keys against a 10M
-- index: 1.8-2.9 s), probes in hash order walk its leaves in order (0.6 s; 0.44 s against
-- 2M): flat with the lake's size. Against a small index the hash join is cheaper and is
-- left to the planner. bench/README.md, "Lookups probe the index".
SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)
