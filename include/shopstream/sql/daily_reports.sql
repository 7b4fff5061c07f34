-- Revenue, orders, average order value and refunds by day (of order creation) and category.
-- Cancelled orders count nowhere; refunds are reported on the day the order was placed.
SELECT created_at::date AS day,
       category,
       count(*)::integer AS orders,
       sum(amount)::numeric(14, 2) AS revenue,
       round(avg(amount), 2)::numeric(14, 2) AS average_order_value,
       sum(refunded_amount)::numeric(14, 2) AS refunds,
       now() AS loaded_at
FROM {{ gold_orders }}
WHERE status <> 'cancelled'
GROUP BY 1, 2
