-- The orders that were created or changed in the run's data interval, with their product.
-- Keyset-paged on the source's row_id so that each part streams with COPY.
SELECT o.row_id AS source_row_id, o.order_id, o.customer_id, o.product_id, p.sku, p.category,
       o.quantity, o.amount, o.status, o.refunded_amount, o.created_at, o.updated_at
FROM orders o
LEFT JOIN products p ON p.product_id = o.product_id
WHERE o.updated_at >= %(start)s AND o.updated_at < %(end)s AND o.row_id > %(after)s
ORDER BY o.row_id
LIMIT %(limit)s
