-- One row per customer with at least one order that was not cancelled.
-- lifetime_value is net of refunds; preferred_category is the category of most orders
-- (ties broken alphabetically).
WITH kept AS (
    SELECT * FROM {{ gold_orders }} WHERE status <> 'cancelled'
),
by_category AS (
    SELECT customer_id, category,
           row_number() OVER (PARTITION BY customer_id ORDER BY count(*) DESC, category) AS preference
    FROM kept
    GROUP BY customer_id, category
)
SELECT c.customer_id,
       c.country,
       sum(k.amount - k.refunded_amount)::numeric(14, 2) AS lifetime_value,
       count(*)::integer AS order_count,
       min(k.created_at) AS first_order_at,
       max(k.created_at) AS last_order_at,
       max(b.category) AS preferred_category,
       now() AS loaded_at
FROM kept k
JOIN {{ customers }} c ON c.customer_id = k.customer_id
JOIN by_category b ON b.customer_id = k.customer_id AND b.preference = 1
GROUP BY c.customer_id, c.country
