-- All customers: the table is small, and a full snapshot catches every change.
SELECT customer_id, email, full_name, country, created_at, updated_at FROM customers ORDER BY customer_id
