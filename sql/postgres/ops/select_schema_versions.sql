-- purpose: the migration(s) the database is at, as Alembic records them
SELECT version_num FROM alembic_version
