-- The orders that break the contract, as they arrived, with the reason: quarantine material.
SELECT problem AS reason, source_row_id, order_id, customer_id, product_id, sku, category, quantity, amount,
       status, refunded_amount, created_at, updated_at
FROM {{ checked_orders }}
WHERE problem IS NOT NULL
ORDER BY source_row_id::bigint
