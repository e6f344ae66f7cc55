-- purpose: the number of distinct values (canonical text) of a metric per window and group, and per window (the total)
SELECT w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3,
       grouping(e.g1, e.g2, e.g3) <> 0 AS is_total,
       count(DISTINCT e.distinct_value)::HUGEINT * 1000000 AS value_micros
FROM metric_events e
JOIN metric_windows w ON w.tenant_id = e.tenant_id AND e.at_us >= w.start_us AND e.at_us < w.end_us
WHERE e.readable
GROUP BY GROUPING SETS ((w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3),
                        (w.tenant_id, w.period_start, w.window_start, w.window_end))
