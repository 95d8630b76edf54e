"""nbflow beside other systems: cron scheduling, Airflow, one task run from outside."""
