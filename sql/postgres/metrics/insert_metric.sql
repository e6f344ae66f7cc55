-- purpose: create a billable metric; no row returned when the code exists (409)
INSERT INTO metrics (code, name, event_metric, aggregation, value, percentile, time_unit,
                     filters, group_by)
VALUES (:code, :name, :event_metric, :aggregation, :value, :percentile, :time_unit,
        CAST(:filters AS jsonb), CAST(:group_by AS text[]))
ON CONFLICT (code) DO NOTHING
RETURNING code
