-- purpose: mark an alert fired for the period, once (no row returned when it already fired)
INSERT INTO alert_triggers (alert_id, period_start, triggered_at, measure)
VALUES (:alert_id, :period_start, :now, :measure)
ON CONFLICT (alert_id, period_start) DO NOTHING
RETURNING alert_id
