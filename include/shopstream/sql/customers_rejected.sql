-- The customers that break the contract, as they arrived, with the reason: quarantine material.
-- A customer already in gold.customers keeps the row an earlier day merged.
SELECT problem AS reason, customer_id, email, full_name, country, created_at, updated_at
FROM {{ checked_customers }}
WHERE problem IS NOT NULL
ORDER BY customer_id::bigint
