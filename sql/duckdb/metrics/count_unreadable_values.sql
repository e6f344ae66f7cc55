-- purpose: per period, the metric's events inside it whose value could not be read (skipped, reported)
SELECT p.period_start, count(*) AS unreadable
FROM metric_events e
JOIN periods p ON e.at_us >= p.start_us AND e.at_us < p.end_us
WHERE NOT e.readable
GROUP BY p.period_start
ORDER BY p.period_start
