-- Cohort retention for the week starting {{ week_start }}: of the customers whose first order
-- fell in each earlier week (the cohort), the share who ordered again in this week.
WITH kept AS (
    SELECT customer_id, date_trunc('week', created_at)::date AS week
    FROM {{ gold_orders }}
    WHERE status <> 'cancelled'
),
cohorts AS (
    SELECT customer_id, min(week) AS cohort_week FROM kept GROUP BY customer_id
),
active AS (
    SELECT DISTINCT customer_id FROM kept WHERE week = CAST({{ week_start }} AS date)
)
SELECT CAST({{ week_start }} AS date) AS week_start,
       c.cohort_week,
       ((CAST({{ week_start }} AS date) - c.cohort_week) / 7)::integer AS weeks_since_first,
       count(*)::integer AS cohort_customers,
       count(a.customer_id)::integer AS active_customers,
       round(count(a.customer_id)::numeric / count(*), 4) AS retention_rate,
       now() AS loaded_at
FROM cohorts c
LEFT JOIN active a ON a.customer_id = c.customer_id
WHERE c.cohort_week <= CAST({{ week_start }} AS date)
GROUP BY c.cohort_week
