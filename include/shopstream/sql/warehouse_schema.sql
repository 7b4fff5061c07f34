-- The warehouse's schemas and gold tables. Keys here are what makes aql.merge
-- (INSERT .. ON CONFLICT) and re-runs idempotent. Safe to run again: nothing is replaced.
-- Runs as one transaction. Two DAGs' first tasks can run it at the same moment on an empty
-- warehouse, and IF NOT EXISTS does not make concurrent CREATEs safe in Postgres (the second
-- fails on pg_namespace's unique index): this lock makes the second wait for the first.
SELECT pg_advisory_xact_lock(hashtext('shopstream.warehouse_schema'));

CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS gold;

CREATE TABLE IF NOT EXISTS gold.customers (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.orders (
    order_id        bigint PRIMARY KEY,
    customer_id     bigint NOT NULL,
    product_id      bigint NOT NULL,
    sku             text,
    category        text,
    quantity        integer NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    status          text NOT NULL,
    refunded_amount numeric(12, 2) NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.customer_360 (
    customer_id        bigint PRIMARY KEY,
    country            text NOT NULL,
    lifetime_value     numeric(14, 2) NOT NULL,
    order_count        integer NOT NULL,
    first_order_at     timestamptz NOT NULL,
    last_order_at      timestamptz NOT NULL,
    preferred_category text NOT NULL,
    loaded_at          timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.inventory (
    sku       text PRIMARY KEY,
    warehouse text NOT NULL,
    on_hand   integer NOT NULL,
    reserved  integer NOT NULL,
    available integer NOT NULL,
    as_of     timestamptz NOT NULL,
    loaded_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.product_catalog (
    sku        text PRIMARY KEY,
    product_id bigint NOT NULL,
    name       text NOT NULL,
    category   text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    on_hand    integer,
    available  integer,
    in_stock   boolean NOT NULL,
    loaded_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS gold.daily_reports (
    day                 date NOT NULL,
    category            text NOT NULL,
    orders              integer NOT NULL,
    revenue             numeric(14, 2) NOT NULL,
    average_order_value numeric(14, 2) NOT NULL,
    refunds             numeric(14, 2) NOT NULL,
    loaded_at           timestamptz NOT NULL,
    PRIMARY KEY (day, category)
);

CREATE TABLE IF NOT EXISTS gold.weekly_analytics (
    week_start             date NOT NULL,
    cohort_week            date NOT NULL,
    weeks_since_first      integer NOT NULL,
    cohort_customers       integer NOT NULL,
    active_customers       integer NOT NULL,
    retention_rate         numeric(6, 4) NOT NULL,
    loaded_at              timestamptz NOT NULL,
    PRIMARY KEY (week_start, cohort_week)
);

CREATE TABLE IF NOT EXISTS gold.weekly_top_products (
    week_start date NOT NULL,
    rank       integer NOT NULL,
    sku        text NOT NULL,
    category   text NOT NULL,
    units      integer NOT NULL,
    revenue    numeric(14, 2) NOT NULL,
    loaded_at  timestamptz NOT NULL,
    PRIMARY KEY (week_start, rank)
);
