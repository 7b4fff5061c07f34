-- The whole product catalog: small, and a snapshot catches every change.
SELECT product_id, sku, name, category, unit_price, updated_at FROM products ORDER BY product_id
