-- purpose: a metric's time-weighted sum per window and group: sum of level x time at that level, rounded half-even once
-- NOTE: each event sets its group's level from its occurred_at on; at one instant the
-- greatest event_id wins; the level before a group's first event is 0 and carries over
-- across windows (metric_events holds the whole history up to the horizon). Exact: levels
-- in micro-units times microseconds (HUGEINT), divided by $unit_us (10^6 x seconds per unit)
-- with one half-even rounding to micro-units.
WITH levels AS (
    SELECT tenant_id, g1, g2, g3, at_us, arg_max(value_micros, event_id) AS level_micros
    FROM metric_events
    WHERE readable
    GROUP BY tenant_id, g1, g2, g3, at_us
),
segments AS (
    SELECT *, lead(at_us) OVER (PARTITION BY tenant_id, g1, g2, g3 ORDER BY at_us) AS next_us
    FROM levels
),
weighted AS (
    SELECT w.tenant_id, w.period_start, w.window_start, w.window_end, s.g1, s.g2, s.g3,
           sum(s.level_micros * (least(coalesce(s.next_us, w.end_us), w.end_us)
                                 - greatest(s.at_us, w.start_us))::HUGEINT) AS numerator
    FROM segments s
    JOIN metric_windows w
      ON w.tenant_id = s.tenant_id AND s.at_us < w.end_us
     AND (s.next_us IS NULL OR s.next_us > w.start_us)
    GROUP BY w.tenant_id, w.period_start, w.window_start, w.window_end, s.g1, s.g2, s.g3
),
divided AS (
    SELECT *, numerator // $unit_us AS q, numerator % $unit_us AS r FROM weighted
)
SELECT tenant_id, period_start, window_start, window_end, g1, g2, g3, false AS is_total,
       q + CASE WHEN 2 * r > $unit_us OR (2 * r = $unit_us AND q % 2 = 1) THEN 1 ELSE 0 END
           AS value_micros
FROM divided
