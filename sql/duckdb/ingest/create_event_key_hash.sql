-- purpose: THE key index's hash of an event's (tenant_id, event_id): stable across versions and engines
-- NOTE: the first 8 bytes of md5(tenant_id || NUL || event_id), UTF-8, read little-endian
-- (md5_number_upper), shifted into Postgres's signed bigint (order kept). md5 is fixed by
-- RFC 1321, so the stored index stays valid across DuckDB versions; a tenant id holds no
-- NUL (models/identifiers.py), so the separator is unambiguous. The index is a screen: a
-- match is a candidate, looked up exactly in its day's lake files. Pinned to a Python
-- reference by tests/services/ingest/test_key_index.py.
CREATE OR REPLACE TEMP MACRO event_key_hash(tenant_id, event_id) AS
    CAST(CAST(md5_number_upper(tenant_id || chr(0) || event_id) AS HUGEINT)
         - 9223372036854775808 AS BIGINT)
