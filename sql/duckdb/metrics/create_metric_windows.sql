-- purpose: the windows a metric is valued over: the calendar month of every tenant with an event of it, plus that tenant's subscription windows
CREATE OR REPLACE TEMP TABLE metric_windows AS
WITH tenants AS (
    SELECT DISTINCT e.tenant_id, p.period_start
    FROM metric_events e
    JOIN periods p ON e.at_us < p.end_us AND ($carries_level OR e.at_us >= p.start_us)
)
SELECT t.tenant_id, p.period_start, p.period_start AS window_start, p.period_end AS window_end,
       p.start_us AS start_us, p.end_us AS end_us
FROM tenants t JOIN periods p USING (period_start)
UNION
SELECT s.tenant_id, s.period_start, s.window_start, s.window_end, s.start_us, s.end_us
FROM subscription_windows s JOIN tenants t USING (tenant_id, period_start)
