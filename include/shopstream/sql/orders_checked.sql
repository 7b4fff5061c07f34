-- Every raw order with the first contract it breaks (NULL when it breaks none).
-- The raw table is all text, so that nothing malformed can fail the load itself.
SELECT raw.*,
       CASE
           WHEN customer_id IS NULL OR customer_id !~ '^[0-9]+$' THEN 'customer_id is missing'
           WHEN order_id IS NULL OR order_id !~ '^[0-9]+$' THEN 'order_id is missing'
           WHEN amount IS NULL OR amount !~ '^-?[0-9]+(\.[0-9]+)?$' THEN 'amount is not a number'
           WHEN amount::numeric < 0 THEN 'amount is negative'
           WHEN status IS NULL OR status NOT IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')
               THEN 'unknown status ' || coalesce(quote_literal(status), 'NULL')
           WHEN row_number() OVER (PARTITION BY order_id ORDER BY source_row_id::bigint) > 1
               THEN 'duplicate order_id (another row of the batch has it)'
       END AS problem
FROM {{ raw_orders }} AS raw
