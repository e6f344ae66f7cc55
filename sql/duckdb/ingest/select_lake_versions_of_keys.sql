-- purpose: the committed lake's version of each batch key that is already in the lake
SELECT b.position, l.metric AS lake_metric, l.quantity_micros AS lake_quantity_micros,
       l.occurred_at AS lake_occurred_at
FROM batch_keys AS b
JOIN read_parquet($files) AS l
  ON l.tenant_id = b.tenant_id AND l.event_id = b.event_id
