-- Extract: the invoices billing issued before a date (void ones left out).
-- connection = "billing"
-- product = "data/invoices.parquet"
-- as_of = "2024-07-01"
SELECT invoice_id, customer_id, issued_on, amount, status
FROM invoices
WHERE issued_on < %(as_of)s
  AND status <> 'void'
ORDER BY invoice_id;
