-- purpose: typed event columns for EventRecord from the raw event frame `raw_events` (rows in any order) (quantities in exact integer micro-units, occurred_at in epoch microseconds UTC)
-- NOTE: the common spellings are parsed here; any other text goes to the reference parsers
-- in models/events.py (UDFs quantity_micros_exact, occurred_at_micros_exact,
-- is_naive_timestamp), which define the rules. A CASE branch runs only on the rows that
-- reach it, so the rare spellings cost nothing on clean input. quantity_micros_exact
-- answers NULL for "not a finite number" and -1 for "negative".
WITH typed AS (
    SELECT
        *,
        coalesce(is_object, false) AS obj,
        CASE
            WHEN quantity IS NULL THEN NULL
            WHEN quantity_type IN ('string', 'number')
                 AND regexp_full_match(quantity, '[0-9]{1,12}(\.[0-9]{0,6})?')
                THEN CAST(split_part(quantity, '.', 1) AS BIGINT) * 1000000
                     + CAST(rpad(split_part(quantity, '.', 2), 6, '0') AS BIGINT)
            ELSE quantity_micros_exact(quantity, quantity_type)
        END AS q,
        CASE
            WHEN occurred_at IS NULL THEN NULL
            WHEN occurred_at_type = 'string'
                 AND regexp_full_match(
                     occurred_at,
                     '[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])'
                 )
                THEN epoch_us(TRY_CAST(occurred_at AS TIMESTAMPTZ))
            WHEN occurred_at_type IN ('string', 'number')
                 AND regexp_full_match(occurred_at, '[0-9]{1,11}')
                THEN CAST(occurred_at AS BIGINT) * 1000000
            ELSE occurred_at_micros_exact(occurred_at, occurred_at_type)
        END AS t_us
    FROM raw_events
),
checked AS (
    SELECT
        *,
        CASE
            WHEN t_us IS NULL AND occurred_at_type = 'string' THEN is_naive_timestamp(occurred_at)
            ELSE false
        END AS naive,
        coalesce(t_us >= $earliest_us, false) AS t_valid
    FROM typed
)
SELECT
    row,
    obj AND (properties_type IS NULL OR properties_type = 'object') AS is_object,
    CASE
        WHEN obj THEN event_id IS NOT NULL AND tenant_id IS NOT NULL AND metric IS NOT NULL
                      AND quantity IS NOT NULL AND occurred_at IS NOT NULL
    END AS fields_present,
    event_id,
    CASE WHEN event_id IS NOT NULL THEN event_id_type = 'string' END AS event_id_is_text,
    tenant_id,
    CASE WHEN tenant_id IS NOT NULL THEN tenant_id_type = 'string' END AS tenant_id_is_text,
    metric,
    CASE WHEN metric IS NOT NULL THEN metric_type = 'string' END AS metric_is_text,
    CASE WHEN quantity IS NOT NULL THEN q IS NOT NULL END AS quantity_finite,
    CASE WHEN q IS NOT NULL THEN q = -1 END AS quantity_negative,
    CASE WHEN q >= 0 THEN q END AS quantity_micros,
    CASE WHEN occurred_at IS NOT NULL THEN t_valid OR naive END AS occurred_at_valid,
    CASE WHEN occurred_at IS NOT NULL AND (t_valid OR naive) THEN NOT naive END AS occurred_at_has_offset,
    CASE WHEN t_valid THEN (t_us - $now_us) // 1000000 END AS seconds_ahead,
    CASE WHEN t_valid THEN t_us END AS occurred_at,
    properties,
    CASE
        WHEN ascii(event_id) BETWEEN 33 AND 126 THEN true  -- starts with a visible ASCII character
        ELSE NOT regexp_full_match(event_id, '[\t\n\x0B\f\r\x{85}\p{Z}]*')
    END AS event_id_not_blank
FROM checked
