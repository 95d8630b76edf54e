-- Publish: the customer summary as one Parquet object in the lake, for teams that read it
-- from there. Run by DuckDB here; the lake connection's credentials write the object.
-- upstream = ["transform"]
-- product = "s3://lake/exports/customer_summary.parquet"
SELECT customer_id, name, plan, country, revenue_365d, overdue_invoices, open_tickets,
       active_days_30, events_90d, health_score, health
FROM transform
ORDER BY customer_id;
