-- Every product with its current stock; a product the inventory API does not know is out of stock.
SELECT p.sku, p.product_id, p.name, p.category, p.unit_price::numeric(12, 2) AS unit_price,
       i.on_hand, i.available, coalesce(i.available, 0) > 0 AS in_stock, now() AS loaded_at
FROM {{ products }} p
LEFT JOIN {{ inventory }} i ON i.sku = p.sku
