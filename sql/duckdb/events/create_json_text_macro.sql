-- purpose: macro json_text(j): the text of a JSON value: a string's content (escapes decoded), any other value's JSON text as is
CREATE OR REPLACE MACRO json_text(j) AS
    CASE
        WHEN starts_with(j, '"') THEN (CASE WHEN contains(j, '\') THEN CAST(j AS JSON)->>'$' ELSE substring(j, 2, length(j) - 2) END)
        ELSE j
    END
