-- What the run publishes: gold orders as they stand after the merge, for the orders it touched.
SELECT * FROM {{ gold_orders }}
WHERE updated_at >= CAST({{ start }} AS timestamptz) AND updated_at < CAST({{ end }} AS timestamptz)
ORDER BY order_id
