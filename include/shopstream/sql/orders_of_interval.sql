-- What the run publishes: gold orders as they stand after the merge, for the orders it touched.
-- {orders} is the gold table (outputs.ORDERS.table); :start and :end the run's data interval.
SELECT * FROM {orders}
WHERE updated_at >= CAST(:start AS timestamptz) AND updated_at < CAST(:end AS timestamptz)
ORDER BY order_id
