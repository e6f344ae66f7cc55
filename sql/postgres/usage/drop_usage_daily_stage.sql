-- purpose: drop the staging table (a transaction may replace several sets of days)
DROP TABLE usage_daily_stage
