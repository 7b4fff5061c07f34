-- The orders that keep the contract, typed, ready to merge into gold.orders.
SELECT order_id::bigint, customer_id::bigint, product_id::bigint, sku, category, quantity::integer,
       amount::numeric(12, 2), status, refunded_amount::numeric(12, 2),
       created_at::timestamptz, updated_at::timestamptz, now() AS loaded_at
FROM {{ checked_orders }}
WHERE problem IS NULL
