-- The ten products with the most revenue in the week starting {{ week_start }}.
SELECT CAST({{ week_start }} AS date) AS week_start,
       row_number() OVER (ORDER BY sum(amount) DESC, sku)::integer AS rank,
       sku,
       min(category) AS category,
       sum(quantity)::bigint AS units,
       sum(amount)::numeric(14, 2) AS revenue,
       now() AS loaded_at
FROM {{ gold_orders }}
WHERE status <> 'cancelled'
  AND created_at >= CAST({{ week_start }} AS date)
  AND created_at < CAST({{ week_start }} AS date) + 7
GROUP BY sku
ORDER BY rank
LIMIT 10
