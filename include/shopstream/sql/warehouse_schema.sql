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

-- gold.orders is orders_etl's contract (include/shopstream/contract.py reads it from here):
-- every incoming order must keep every constraint below. So each column that a report or a
-- feature needs is declared here: sku and category, which daily_reports, customer_360 and
-- weekly_top_products group by into NOT NULL columns; the customer that customer_360 joins on;
-- a created_at that pandas can hold (the features read it; pandas stops at 1677 and 2262).
CREATE TABLE IF NOT EXISTS gold.orders (
    order_id        bigint PRIMARY KEY,
    customer_id     bigint NOT NULL
        CONSTRAINT orders_customer_known REFERENCES gold.customers (customer_id),
    product_id      bigint NOT NULL,
    sku             text NOT NULL,
    category        text NOT NULL,
    quantity        integer NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    status          text NOT NULL,
    refunded_amount numeric(12, 2) NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    loaded_at       timestamptz NOT NULL,
    CONSTRAINT quantity_positive CHECK (quantity >= 1),
    CONSTRAINT amount_not_negative CHECK (amount >= 0),
    -- numeric holds NaN, which compares above every number: it would pass the checks around it
    -- and turn every sum it enters into NaN.
    CONSTRAINT amounts_are_numbers CHECK (amount <> 'NaN' AND refunded_amount <> 'NaN'),
    CONSTRAINT known_status CHECK (status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    CONSTRAINT refund_within_amount CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    CONSTRAINT created_at_in_range CHECK (created_at >= '1970-01-01' AND created_at < '2200-01-01')
);

-- Whether a text is a valid input of a type, for the contract on Postgres 15 (16 has
-- pg_input_is_valid, which the contract uses there). The gold tables' types are cast directly,
-- with plans plpgsql keeps; any other type through EXECUTE, which plans every call (slow).
CREATE OR REPLACE FUNCTION staging.value_fits(value text, type_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    CASE type_name
        WHEN 'integer' THEN PERFORM value::integer;
        WHEN 'bigint' THEN PERFORM value::bigint;
        WHEN 'numeric(12,2)' THEN PERFORM value::numeric(12, 2);
        WHEN 'timestamp with time zone' THEN PERFORM value::timestamptz;
        WHEN 'date' THEN PERFORM value::date;
        ELSE EXECUTE format('SELECT CAST(%L AS %s)', value, type_name);
    END CASE;
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END
$$;

-- Each DAG run stages in tables of its own, named <table>__<run key> (warehouse.staging_name).
-- A run claims its key when it starts and drops its tables when it ends well; a failed run's
-- tables stay for a while, so that its failed task can be cleared and re-run, and are then
-- dropped by a later run (warehouse.drop_staging). Keys found without a claim are noted when seen.
CREATE TABLE IF NOT EXISTS staging.runs (
    run_key text PRIMARY KEY,
    dag_id  text,
    run_id  text,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- Orders that wait for their customer: quarantined because their customer_id is in no row of
-- gold.customers (a new customer quarantined for a missing name, say). Each later run with orders
-- checks them again once their customer is there, and drops them once gold.orders holds them
-- (contract.release_held, contract.hold_unreferenced). As they arrived: text, as the staging tables.
CREATE TABLE IF NOT EXISTS staging.held_orders (
    source_row_id text, order_id text PRIMARY KEY, customer_id text, product_id text, sku text, category text,
    quantity text, amount text, status text, refunded_amount text, created_at text, updated_at text,
    held_since timestamptz NOT NULL DEFAULT now()
);

-- How many statements have written each gold table, and, for each table rebuilt whole and swapped
-- in, the count its rows were built after: an older build never replaces a newer one
-- (warehouse.replace_rows), so a build that started before another run's merge is not swapped in last.
CREATE TABLE IF NOT EXISTS staging.gold_writes (
    table_name text PRIMARY KEY,
    writes     bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS staging.swaps (
    target      text PRIMARY KEY,
    built_after bigint NOT NULL
);

CREATE OR REPLACE FUNCTION staging.count_gold_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO staging.gold_writes VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 1)
    ON CONFLICT (table_name) DO UPDATE SET writes = staging.gold_writes.writes + 1;
    RETURN NULL;
END
$$;

-- An update that would put an older version of a row over a newer one leaves the row as it is:
-- two runs merging the same order (changed on both their days) keep the newer version in either
-- order, and re-running an old day does not undo a later day's change. The trigger's WHEN runs
-- only for such rows, so a merge pays nothing per row for it.
CREATE OR REPLACE FUNCTION gold.keep_newer_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

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

-- gold.inventory is inventory_sync's contract on the inventory API's answers, as gold.orders
-- is orders_etl's.
CREATE TABLE IF NOT EXISTS gold.inventory (
    sku       text PRIMARY KEY,
    warehouse text NOT NULL,
    on_hand   integer NOT NULL,
    reserved  integer NOT NULL,
    available integer NOT NULL,
    as_of     timestamptz NOT NULL,
    loaded_at timestamptz NOT NULL,
    CONSTRAINT sku_not_empty CHECK (sku <> ''),
    CONSTRAINT counts_not_negative CHECK (on_hand >= 0 AND reserved >= 0),
    CONSTRAINT reserved_within_stock CHECK (reserved <= on_hand)
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
    units      bigint NOT NULL,
    revenue    numeric(14, 2) NOT NULL,
    loaded_at  timestamptz NOT NULL,
    PRIMARY KEY (week_start, rank)
);

-- Warehouses created before these constraints and types get them here; NOT VALID leaves old rows
-- alone (data_quality_checks still judges those) and holds every new one to them.
DO $$
DECLARE
    wanted text[][] := ARRAY[
        ['gold.orders', 'orders_customer_known', 'FOREIGN KEY (customer_id) REFERENCES gold.customers (customer_id)'],
        ['gold.orders', 'quantity_positive', 'CHECK (quantity >= 1)'],
        ['gold.orders', 'amount_not_negative', 'CHECK (amount >= 0)'],
        ['gold.orders', 'amounts_are_numbers', 'CHECK (amount <> ''NaN'' AND refunded_amount <> ''NaN'')'],
        ['gold.orders', 'known_status',
         'CHECK (status IN (''placed'', ''paid'', ''shipped'', ''delivered'', ''cancelled'', ''refunded''))'],
        ['gold.orders', 'refund_within_amount', 'CHECK (refunded_amount >= 0 AND refunded_amount <= amount)'],
        ['gold.orders', 'created_at_in_range', 'CHECK (created_at >= ''1970-01-01'' AND created_at < ''2200-01-01'')'],
        ['gold.inventory', 'sku_not_empty', 'CHECK (sku <> '''')'],
        ['gold.inventory', 'counts_not_negative', 'CHECK (on_hand >= 0 AND reserved >= 0)'],
        ['gold.inventory', 'reserved_within_stock', 'CHECK (reserved <= on_hand)']
    ];
    target text;
BEGIN
    FOR i IN 1 .. array_length(wanted, 1) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = wanted[i][1]::regclass
                       AND conname = wanted[i][2]) THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID', wanted[i][1], wanted[i][2], wanted[i][3]);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'gold.orders'::regclass
               AND attname IN ('sku', 'category') AND NOT attnotnull)
       AND NOT EXISTS (SELECT 1 FROM gold.orders WHERE sku IS NULL OR category IS NULL) THEN
        ALTER TABLE gold.orders ALTER COLUMN sku SET NOT NULL, ALTER COLUMN category SET NOT NULL;
    END IF;
    -- Row versions (keep_newer) and write counts (count_writes) of the tables that runs merge.
    FOREACH target IN ARRAY ARRAY['gold.orders', 'gold.customers'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target::regclass AND tgname = 'keep_newer') THEN
            EXECUTE format('CREATE TRIGGER keep_newer BEFORE UPDATE ON %s FOR EACH ROW'
                           ' WHEN (NEW.updated_at < OLD.updated_at) EXECUTE FUNCTION gold.keep_newer_row()', target);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target::regclass AND tgname = 'count_writes') THEN
            EXECUTE format('CREATE TRIGGER count_writes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION staging.count_gold_write()', target);
        END IF;
    END LOOP;
    -- A week's units of one product can pass the integer range even when each order's cannot.
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'gold.weekly_top_products'::regclass
               AND attname = 'units' AND atttypid = 'integer'::regtype) THEN
        ALTER TABLE gold.weekly_top_products ALTER COLUMN units TYPE bigint;
    END IF;
END
$$;
