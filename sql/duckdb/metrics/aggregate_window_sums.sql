-- purpose: sum, count and max of a metric's readable values per window and group, and per window (the total)
SELECT w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3,
       grouping(e.g1, e.g2, e.g3) <> 0 AS is_total,
       sum(e.value_micros) AS sum_micros,
       count(*)::HUGEINT * 1000000 AS count_micros,
       max(e.value_micros) AS max_micros
FROM metric_events e
JOIN metric_windows w ON w.tenant_id = e.tenant_id AND e.at_us >= w.start_us AND e.at_us < w.end_us
WHERE e.readable
GROUP BY GROUPING SETS ((w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3),
                        (w.tenant_id, w.period_start, w.window_start, w.window_end))
