-- purpose: macro json_kind(j): the type tag of a JSON value's text (string, object, other, number; null when absent)
-- NOTE: the first character tells: '"' string, '{' object, 't', 'f', '[' another type
-- (true, false, array), else a number (NaN and Infinity too, refused later as not finite).
CREATE OR REPLACE MACRO json_kind(j) AS
    CASE
        WHEN j IS NULL THEN NULL
        WHEN starts_with(j, '"') THEN 'string'
        WHEN starts_with(j, '{') THEN 'object'
        WHEN starts_with(j, 't') OR starts_with(j, 'f') OR starts_with(j, '[') THEN 'other'
        ELSE 'number'
    END
