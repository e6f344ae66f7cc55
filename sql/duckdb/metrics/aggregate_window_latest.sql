-- purpose: the value of a metric's last event by (occurred_at, event_id) per window and group, and per window
SELECT w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3,
       grouping(e.g1, e.g2, e.g3) <> 0 AS is_total,
       arg_max(e.value_micros, {'at': e.at_us, 'id': e.event_id}) AS value_micros
FROM metric_events e
JOIN metric_windows w ON w.tenant_id = e.tenant_id AND e.at_us >= w.start_us AND e.at_us < w.end_us
WHERE e.readable
GROUP BY GROUPING SETS ((w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3),
                        (w.tenant_id, w.period_start, w.window_start, w.window_end))
