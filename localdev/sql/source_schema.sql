-- ShopStream's operational orders database, as the local stand-in has it. `orders` keeps a
-- surrogate key: the legacy application can write the same order_id twice, which the
-- pipelines must catch.
CREATE TABLE IF NOT EXISTS customers (
    customer_id bigint PRIMARY KEY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    product_id bigint PRIMARY KEY,
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    category   text NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    row_id          bigserial PRIMARY KEY,
    order_id        bigint NOT NULL,
    customer_id     bigint,
    product_id      bigint NOT NULL,
    quantity        integer NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    status          text NOT NULL,
    refunded_amount numeric(12, 2) NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_updated_at ON orders (updated_at);
CREATE INDEX IF NOT EXISTS orders_order_id ON orders (order_id);

-- How far the seeder has written each day (up to which updated_at), so that seeding again,
-- or trickling today's orders in as the day goes on, never writes a row twice.
CREATE TABLE IF NOT EXISTS seed_progress (
    day   date PRIMARY KEY,
    up_to timestamptz NOT NULL
);
