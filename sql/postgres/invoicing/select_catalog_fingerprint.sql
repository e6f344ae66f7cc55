-- purpose: what identifies the catalog's contents (plans and quotas are immutable once created), for the preview's cached catalog
SELECT (SELECT count(*) FROM plans) AS plans, (SELECT max(id) FROM plans) AS max_plan_id,
       (SELECT max(created_at) FROM plans) AS last_created_at,
       (SELECT count(*) FROM plan_quotas) AS quotas
