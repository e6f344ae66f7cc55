-- purpose: who this database is (cluster system identifier and database name), the lake owner marker's content
SELECT system_identifier::text AS system_identifier, current_database() AS database
FROM pg_control_system()
