-- The API's stock, one row per SKU, with what can still be sold.
SELECT sku, warehouse, on_hand, reserved, on_hand - reserved AS available, as_of, now() AS loaded_at
FROM {{ raw_stock }}
