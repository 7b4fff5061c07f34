-- The customers that keep the contract, typed, ready to merge into gold.customers.
SELECT customer_id::bigint, email, full_name, country, created_at::timestamptz, updated_at::timestamptz
FROM {{ checked_customers }}
WHERE problem IS NULL
