-- Extract: the customers of the warehouse as of a date (signed up before it, not churned by then).
-- connection = "warehouse"
-- product = "data/customers.parquet"
-- as_of = "2024-07-01"
SELECT customer_id, name, plan, country, signup_date
FROM crm.customers
WHERE signup_date < %(as_of)s
  AND (churned_on IS NULL OR churned_on >= %(as_of)s)
ORDER BY customer_id;
