-- purpose: whether the database has Alembic's version table (in the search path, as Alembic looks for it)
SELECT to_regclass('alembic_version') IS NOT NULL
