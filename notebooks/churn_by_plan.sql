-- Churn by plan: a SQL task, run by DuckDB. Its header declares it like a parameters cell.
-- upstream = ["validate"]
-- product = "output/churn_by_plan.csv"
-- min_customers = 50
SELECT
    plan,
    count(*) AS customers,
    round(avg(churned), 4) AS churn_rate,
    round(avg(monthly_charge), 2) AS avg_monthly_charge
FROM validate_data
GROUP BY plan
HAVING count(*) >= $min_customers
ORDER BY churn_rate DESC;
