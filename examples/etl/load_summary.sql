-- Load: the customer summary into the warehouse, where dashboards read it. The transform's
-- file is staged here as the temporary table `transform`; the last SELECT replaces
-- public.customer_summary at once (readers see the old table or the new one, never half),
-- with the column types the warehouse keeps.
-- connection = "warehouse"
-- upstream = ["transform"]
-- product = "table://warehouse/public.customer_summary"
-- as_of = "2024-07-01"
SELECT t.customer_id,
       t.name,
       t.plan,
       t.country,
       t.signup_date,
       CAST(t.revenue_365d AS numeric(14, 2)) AS revenue_365d,
       CAST(t.overdue_invoices AS integer) AS overdue_invoices,
       CAST(t.open_tickets AS integer) AS open_tickets,
       CAST(t.active_days_30 AS integer) AS active_days_30,
       CAST(t.events_90d AS integer) AS events_90d,
       CAST(t.health_score AS smallint) AS health_score,
       t.health,
       CAST(%(as_of)s AS date) AS as_of,
       now() AS loaded_at
FROM transform AS t
ORDER BY t.customer_id;
