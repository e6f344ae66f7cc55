-- purpose: which of the given JSON lines repeat a top-level key (ambiguous content)
SELECT row, coalesce(len(list_distinct(k)) < len(k), false) AS repeated_key
FROM (SELECT row, try(json_keys(text)) AS k FROM suspects)
