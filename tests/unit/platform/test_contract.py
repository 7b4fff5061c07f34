"""orders_etl's contract is read from gold.orders' definition: a constraint added there is checked.

Against real Postgres: the warehouse schema script, an all-text staging table like load_orders
writes, and the contract's query. Each test runs in a transaction that is rolled back. The last
tests need no database: how a catalog's answer becomes a contract, a contract no incoming row
could keep, and a reason's rule without its values.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.pipelines.orders import RAW_ORDER_COLUMNS
from include.shopstream.platform.contract import (
    Check,
    Column,
    Contract,
    ContractError,
    Reference,
    check_rows,
    hold_unreferenced,
    problems_query,
    read_contract,
    release_held,
    rule_of,
)
from include.shopstream.platform.warehouse import sql

pytestmark = pytest.mark.services

GOOD = {
    "source_row_id": "1",
    "order_id": "100",
    "customer_id": "7",
    "product_id": "3",
    "sku": "SKU-0003",
    "category": "books",
    "quantity": "2",
    "amount": "19.90",
    "status": "paid",
    "refunded_amount": "0.00",
    "created_at": "2026-11-13 09:00:00+00",
    "updated_at": "2026-11-13 09:00:00+00",
}


@pytest.fixture(scope="module")
def database(pg_server):
    name = "shopstream_contract"
    pg_server.ensure_database(name)
    with pg_server.connect(name) as conn, conn.cursor() as cur:
        cur.execute(sql("warehouse_schema.sql"))
        cur.execute(
            "INSERT INTO gold.customers VALUES (7, 'a@example.com', 'A', 'DE', now(), now()) ON CONFLICT DO NOTHING"
        )
    return name


@pytest.fixture
def conn(pg_server, database):
    connection = pg_server.connect(database)
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE staging.orders_raw_test (" + ", ".join(f"{c} text" for c in RAW_ORDER_COLUMNS) + ")")
    yield connection
    connection.rollback()
    connection.close()


def problems(conn, *rows: dict) -> list[str | None]:
    """The problem the contract finds in each row, in order."""
    with conn.cursor() as cur:
        cur.execute("TRUNCATE staging.orders_raw_test")
        for index, row in enumerate(rows, start=1):
            values = {**GOOD, "source_row_id": str(index), **row}
            columns = list(values)
            placeholders = ", ".join(["%s"] * len(columns))
            cur.execute(
                f"INSERT INTO staging.orders_raw_test ({', '.join(columns)}) VALUES ({placeholders})",
                [values[c] for c in columns],
            )
    check_rows(
        conn,
        "gold.orders",
        "staging.orders_raw_test",
        "staging.orders_checked_test",
        order_by="source_row_id",
        supplied=("loaded_at",),
    )
    with conn.cursor() as cur:
        cur.execute("SELECT problem FROM staging.orders_checked_test ORDER BY source_row_id::int")
        return [row[0] for row in cur.fetchall()]


def test_a_row_that_keeps_every_constraint_has_no_problem(conn):
    assert problems(conn, {}) == [None]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"customer_id": None}, "customer_id is missing"),
        ({"sku": None}, "sku is missing"),
        ({"category": None}, "category is missing"),
        ({"quantity": "2147483648"}, "quantity is not a valid integer: '2147483648'"),
        ({"amount": "12345678901.00"}, "amount is not a valid numeric(12,2): '12345678901.00'"),
        ({"amount": "12,5"}, "amount is not a valid numeric(12,2): '12,5'"),
        ({"created_at": "2026-02-30 10:00"}, "created_at is not a valid timestamp with time zone: '2026-02-30 10:00'"),
        ({"customer_id": "99"}, "customer_id='99' is in no row of gold.customers (orders_customer_known)"),
        ({"amount": "-1.00"}, "breaks amount_not_negative ((amount >= (0)::numeric)): amount='-1.00'"),
        ({"status": "teleported"}, "breaks known_status"),
        ({"refunded_amount": "20.00"}, "breaks refund_within_amount"),
    ],
)
def test_each_constraint_of_gold_orders_is_checked(conn, change, reason):
    (problem,) = problems(conn, change)
    assert problem is not None and problem.startswith(reason)


def test_the_second_row_of_a_key_is_a_duplicate(conn):
    assert problems(conn, {}, {"status": "shipped"}) == [None, "duplicate order_id (another row of the batch has it)"]


def test_a_row_rejected_for_another_reason_takes_no_key_from_a_good_one(conn):
    """The legacy app writes an order twice, the first time without its customer: the second row
    is the order, merged; only a third good row of the key is a duplicate."""
    duplicate = "duplicate order_id (another row of the batch has it)"
    assert problems(conn, {"customer_id": None}, {}) == ["customer_id is missing", None]
    assert problems(conn, {"status": "teleported"}, {}, {"quantity": "3"}, {"customer_id": "99"}) == [
        "breaks known_status ((status = ANY (ARRAY['placed'::text, 'paid'::text, 'shipped'::text,"
        " 'delivered'::text, 'cancelled'::text, 'refunded'::text]))): status='teleported'",
        None,
        duplicate,
        "customer_id='99' is in no row of gold.customers (orders_customer_known)",
    ]


def test_a_not_null_column_added_to_the_schema_is_checked(conn):
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE gold.orders ADD COLUMN channel text NOT NULL DEFAULT 'web'")
        cur.execute("ALTER TABLE staging.orders_raw_test ADD COLUMN channel text")
    assert problems(conn, {"channel": "app"}, {"channel": None}) == [None, "channel is missing"]


def test_a_reference_added_to_the_schema_is_checked(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE gold.products_test (product_id bigint PRIMARY KEY)")
        cur.execute("INSERT INTO gold.products_test VALUES (3)")
        cur.execute(
            "ALTER TABLE gold.orders ADD CONSTRAINT orders_product_known"
            " FOREIGN KEY (product_id) REFERENCES gold.products_test (product_id)"
        )
    assert problems(conn, {}, {"order_id": "101", "product_id": "4"}) == [
        None,
        "product_id='4' is in no row of gold.products_test (orders_product_known)",
    ]


def test_a_check_added_to_the_schema_is_checked(conn):
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE gold.orders ADD CONSTRAINT sane_quantity CHECK (quantity <= 1000)")
    assert problems(conn, {"quantity": "1000"}, {"order_id": "101", "quantity": "1001"}) == [
        None,
        "breaks sane_quantity ((quantity <= 1000)): quantity='1001'",
    ]


def test_a_required_column_the_rows_do_not_have_cannot_be_checked(conn):
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE gold.orders ADD COLUMN channel text NOT NULL DEFAULT 'web'")
        cur.execute("ALTER TABLE gold.orders ALTER COLUMN channel DROP DEFAULT")
    with pytest.raises(ContractError, match=r"gold\.orders requires channel"):
        problems(conn, {})


def test_postgres_15_finds_the_same_problems_as_16(conn):
    rows = [
        {},
        # (not "0x10" or "1_000": integers Postgres 16 reads and 15 does not)
        *({"quantity": q} for q in ("2147483648", "-2147483648", " 12 ", "+5", "1.0", "1e3", "")),
        *({"order_id": k} for k in ("9223372036854775808", "-9223372036854775808", "٣")),
        *({"amount": a} for a in ("1e3", "12345678901", "NaN", "-0.005", ".5", "1,5")),
        {"created_at": "never"},
    ]
    problems(conn, *rows)  # fills the staging table
    with conn.cursor() as cur:
        contract = read_contract(cur, "gold.orders")
        found = {}
        for version in (150000, 160000):
            query = problems_query(
                contract, "staging.orders_raw_test", list(RAW_ORDER_COLUMNS), order_by="source_row_id",
                server_version=version, supplied=("loaded_at",),
            )  # fmt: skip
            cur.execute(query + pgsql_order())
            found[version] = [row[-1] for row in cur.fetchall()]
    assert found[150000] == found[160000]
    assert found[160000][0] is None and sum(p is not None for p in found[160000]) >= 12


def pgsql_order():
    from psycopg2 import sql as pgsql

    return pgsql.SQL(" ORDER BY source_row_id::int")


ITEM = {"sku": "A", "warehouse": "AMS", "on_hand": 3, "reserved": 1, "as_of": "2026-11-13T08:00:00Z"}


def item_problems(conn, *items: dict) -> list[str]:
    from include.shopstream.pipelines.inventory import item_problems as check

    return check(conn, [{**ITEM, **item} for item in items])


def test_inventory_items_are_checked_against_gold_inventory(conn):
    assert item_problems(conn, {}, {"sku": "B"}) == []
    assert item_problems(
        conn,
        {"reserved": 5},
        {"sku": ""},
        {"sku": 7},
        {"on_hand": None},
        {"on_hand": 2.5},
        {"on_hand": True},
        {"reserved": 2**31},
        {"as_of": "soon"},
        {"warehouse": None, "sku": "C"},
    ) == [
        "items[0]: breaks reserved_within_stock ((reserved <= on_hand)): reserved='5', on_hand='3'",
        "items[1]: breaks sku_not_empty ((sku <> ''::text)): sku=''",
        "items[2]: sku is not a text: 7",
        "items[3]: on_hand is missing",
        "items[4]: on_hand is not a valid integer: '2.5'",
        "items[5]: on_hand is not a valid integer: 'True'",
        "items[6]: reserved is not a valid integer: '2147483648'",
        "items[7]: as_of is not a valid timestamp with time zone: 'soon'",
        "items[8]: warehouse is missing",
    ]


def test_a_sku_twice_in_one_answer_is_caught(conn):
    assert item_problems(conn, {}, {"on_hand": 4}) == ["items[1]: duplicate sku (another row of the batch has it)"]


def test_a_check_added_to_gold_inventory_is_checked(conn):
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE gold.inventory ADD CONSTRAINT known_warehouse CHECK (warehouse IN ('AMS', 'BER'))")
    # item_problems rolls back its own work: the constraint must be there when it reads the catalog.
    assert item_problems(conn, {"warehouse": "XYZ"}) == [
        "items[0]: breaks known_warehouse ((warehouse = ANY (ARRAY['AMS'::text, 'BER'::text]))): warehouse='XYZ'"
    ]


def test_an_amount_of_nan_is_caught(conn):
    (problem,) = problems(conn, {"amount": "NaN"})
    assert problem.startswith("breaks amounts_are_numbers")


def test_an_order_of_no_units_is_caught(conn):
    (problem,) = problems(conn, {"quantity": "0"})
    assert problem == "breaks quantity_positive ((quantity >= 1)): quantity='0'"


def test_a_failure_message_names_the_item_and_rule_without_its_values(conn):
    """fetch_stock's failure becomes an alert: the quarantine file keeps the values, the message does not."""
    from include.shopstream.pipelines.inventory import first_problem

    changes = ({"warehouse": "Jane Roe's shed", "reserved": 5}, {"on_hand": "2.5x"})
    items = [{**ITEM, **change} for change in changes]
    found = item_problems(conn, *changes)
    assert [first_problem(problem, items) for problem in found] == [
        "items[0], sku 'A': breaks reserved_within_stock",
        "items[1], sku 'A': on_hand is not a valid integer",
    ]
    assert first_problem("items[0]: sku is not a text: 7", [{"sku": 7}]) == "items[0]: sku is not a text"


def test_a_reasons_rule_keeps_no_value():
    assert rule_of("breaks known_status ((status = ANY (ARRAY['paid'::text]))): status='Jane, Roe'") == (
        "breaks known_status"
    )
    assert rule_of("created_at is not a valid timestamp with time zone: 'Jane Roe'") == (
        "created_at is not a valid timestamp with time zone"
    )
    assert rule_of("customer_id='99' is in no row of gold.customers (orders_customer_known)") == (
        "customer_id is in no row of gold.customers (orders_customer_known)"
    )
    assert rule_of("email is missing") == "email is missing"


class Catalog:
    """A cursor whose answers are the catalog's rows: the columns first, then the constraints."""

    def __init__(self, *answers: list[tuple]) -> None:
        self.answers, self.executed = list(answers), []

    def execute(self, query, params=None) -> None:
        self.executed.append(params)

    def fetchall(self) -> list[tuple]:
        return self.answers.pop(0)


def test_a_contract_is_read_from_the_catalogs_columns_and_constraints():
    catalog = Catalog(
        [("order_id", "bigint", True, False), ("amount", "numeric(12,2)", True, False), ("note", "text", False, True)],
        [
            ("orders_pkey", "p", None, ["order_id"], "-", []),
            ("amount_not_negative", "c", "(amount >= (0)::numeric)", ["amount"], "-", []),
            ("orders_customer_known", "f", None, ["customer_id"], "gold.customers", ["customer_id"]),
        ],
    )
    contract = read_contract(catalog, "gold.orders")
    assert catalog.executed == [{"table": "gold.orders"}, {"table": "gold.orders"}]
    assert contract == Contract(
        "gold.orders",
        (
            Column("order_id", "bigint", True, False),
            Column("amount", "numeric(12,2)", True, False),
            Column("note", "text", False, True),
        ),
        (Check("amount_not_negative", "(amount >= (0)::numeric)", ("amount",)),),
        (Reference("orders_customer_known", ("customer_id",), "gold.customers", ("customer_id",)),),
        ("order_id",),
    )
    assert contract.column("amount").type == "numeric(12,2)"


RETURNS = Contract(
    "gold.returns",
    (
        Column("return_id", "bigint", True, False),
        Column("reason", "text", True, False),
        Column("loaded_at", "timestamp with time zone", True, False),
        Column("channel", "text", True, True),
        Column("note", "text", False, False),
    ),
    (),
    (),
    ("return_id",),
)


def test_a_required_column_neither_the_rows_nor_the_pipeline_supply_cannot_be_checked():
    with pytest.raises(ContractError, match=r"gold\.returns requires reason, loaded_at, which the rows of staging\.r"):
        problems_query(RETURNS, "staging.r", ["return_id"], order_by="return_id", server_version=160000)
    query = problems_query(
        RETURNS,
        "staging.r",
        ["return_id", "reason"],
        order_by="return_id",
        server_version=160000,
        supplied=("loaded_at",),
    )
    assert "pg_input_is_valid" in repr(query)  # a column with a default, or nullable, may be absent


def test_postgres_15_checks_a_value_without_pg_input_is_valid():
    columns = ["return_id", "reason", "loaded_at"]
    older = repr(problems_query(RETURNS, "staging.r", columns, order_by="return_id", server_version=150000))
    assert "pg_input_is_valid" not in older
    assert "staging.value_fits" in older  # the timestamp; the integer by pattern and range
    assert "9223372036854775807" in older


def quoted(value: str) -> str:
    """As quote_literal writes it: quotes doubled, and E'..' with backslashes doubled when it holds one."""
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)


@EXAMPLES
@given(value=st.text(min_size=1, max_size=200))
def test_no_value_a_reason_quotes_reaches_its_rule(value):
    reasons = {
        f"quantity is not a valid integer: {quoted(value)}": "quantity is not a valid integer",
        f"created_at is not a valid timestamp with time zone: {quoted(value)}": (
            "created_at is not a valid timestamp with time zone"
        ),
        f"breaks known_status ((status = ANY (ARRAY['paid'::text]))): status={quoted(value)}": "breaks known_status",
        f"sku is not a text: {value}": "sku is not a text",
    }
    for reason, rule in reasons.items():
        assert rule_of(reason) == rule


@EXAMPLES
@given(customer_id=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_reference_reasons_rule_keeps_the_column_but_not_its_value(customer_id):
    reason = f"customer_id={quoted(str(customer_id))} is in no row of gold.customers (orders_customer_known)"
    assert rule_of(reason) == "customer_id is in no row of gold.customers (orders_customer_known)"


# Any text, and texts made mostly of what a reason's own syntax uses.
KEY_TEXT = st.one_of(st.text(max_size=80), st.text(alphabet=",= '\\Eax\n", max_size=40))


@EXAMPLES
@given(store=KEY_TEXT, sku=st.one_of(st.none(), KEY_TEXT))
def test_a_text_keys_rule_names_its_columns_whatever_the_values_hold(store, sku):
    """A foreign key on text columns: values holding ", ", "=" or quotes stay out of the rule."""
    shown = f"store={quoted(store)}, sku={'NULL' if sku is None else quoted(sku)}"
    rule = "store, sku is in no row of gold.stock (stock_known)"
    assert rule_of(f"{shown} is in no row of gold.stock (stock_known)") == rule


def test_a_text_key_that_looks_like_two_columns_is_one_value():
    reason = "store='north, sku=''x''', sku='y' is in no row of gold.stock (stock_known)"
    assert rule_of(reason) == "store, sku is in no row of gold.stock (stock_known)"
    garbled = "garbled is in no row of gold.stock (stock_known)"
    assert rule_of(garbled) == "a key is in no row of gold.stock (stock_known)"


def test_the_checked_rows_survive_a_crash_of_postgres(tmp_path):
    """The run's next tasks read the checked table, maybe after Postgres recovered from a crash
    (a backend killed by the OOM killer makes it recover): it must still hold every row."""
    import os
    import signal

    from localdev import postgres
    from localdev.processes import free_port

    port, data = free_port(), tmp_path / "data"
    server = postgres.start_embedded(data, port, tmp_path / "postgres.log")
    try:
        with server.connect() as conn:
            with conn.cursor() as cur:
                cur.execute(sql("warehouse_schema.sql"))
                cur.execute("INSERT INTO gold.customers VALUES (7, 'a@example.com', 'A', 'DE', now(), now())")
                cur.execute("CREATE TABLE staging.raw (" + ", ".join(f"{c} text" for c in RAW_ORDER_COLUMNS) + ")")
                cur.execute(
                    "INSERT INTO staging.raw SELECT n, 100 + n, 7, 3, 'SKU-3', 'books', 1, 9.5, 'paid', 0,"
                    " '2026-11-13 09:00+00', '2026-11-13 09:00+00' FROM generate_series(1, 500) AS n"
                )
            check_rows(
                conn, "gold.orders", "staging.raw", "staging.checked", order_by="source_row_id", supplied=("loaded_at",)
            )
        conn.close()
        os.kill(server.service.pid, signal.SIGQUIT)  # an immediate shutdown: the next start recovers
        server.service.process.wait(timeout=30)
        server = postgres.start_embedded(data, port, tmp_path / "postgres.log")
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(*) FILTER (WHERE problem IS NULL) FROM staging.checked")
            assert cur.fetchone() == (500, 500)
        conn.close()
        with open(tmp_path / "postgres.log") as log:
            assert "database system was interrupted" in log.read(), "Postgres did not recover from a crash"
    finally:
        server.stop()


# -- Rows that wait for their customer -----------------------------------------------------------

HELD = "staging.held_orders"
RAW, CHECKED = "staging.orders_raw_test", "staging.orders_checked_test"


def held_orders(conn) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT order_id, updated_at FROM staging.held_orders ORDER BY order_id")
        return dict(cur.fetchall())


def hold(conn) -> int:
    with conn.cursor() as cur:
        contract = read_contract(cur, "gold.orders")
    return hold_unreferenced(conn, contract, HELD, CHECKED, order_by="source_row_id", version="updated_at")


def test_an_order_waits_for_its_customer_then_joins_the_batch_and_leaves_once_merged(conn):
    first = problems(conn, {"order_id": "200", "customer_id": "8"}, {"order_id": "201", "status": "teleported"})
    assert first[0] == "customer_id='8' is in no row of gold.customers (orders_customer_known)"
    assert hold(conn) == 1
    assert held_orders(conn) == {"200": GOOD["updated_at"]}, "only the order that waits for a row is held"

    # The next day, before customer 8 arrives: the order stays held, outside the batch.
    assert problems(conn, {"order_id": "202"}) == [None]
    assert release_held(conn, "gold.orders", HELD, RAW, version="updated_at") == 0
    # Customer 8 arrives: the held order joins the day's batch and keeps the contract now.
    with conn.cursor() as cur:
        cur.execute("INSERT INTO gold.customers VALUES (8, 'b@example.com', 'B', 'FR', now(), now())")
    assert release_held(conn, "gold.orders", HELD, RAW, version="updated_at") == 1
    check_rows(conn, "gold.orders", RAW, CHECKED, order_by="source_row_id", supplied=("loaded_at",))
    with conn.cursor() as cur:
        cur.execute(f"SELECT order_id, problem FROM {CHECKED} ORDER BY order_id")
        assert cur.fetchall() == [("200", None), ("202", None)]
    assert release_held(conn, "gold.orders", HELD, RAW, version="updated_at") == 0, "no key twice in a batch"
    assert hold(conn) == 0 and held_orders(conn) == {"200": GOOD["updated_at"]}, "held until merged"

    # Merged: the next run lets it go.
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO gold.orders VALUES (200, 8, 3, 'SKU-0003', 'books', 2, 19.90, 'paid', 0,"
            " %(at)s, %(at)s, now())",
            {"at": GOOD["updated_at"]},
        )
    assert release_held(conn, "gold.orders", HELD, RAW, version="updated_at") == 0
    assert held_orders(conn) == {}


def test_a_held_order_newer_than_gold_stays_and_an_older_one_does_not_replace_it(conn):
    later, earlier = "2026-11-14 09:00:00+00", "2026-11-12 09:00:00+00"
    with conn.cursor() as cur:  # gold holds order 300 as it was before it moved to an unknown customer
        cur.execute(
            "INSERT INTO gold.orders VALUES (300, 7, 3, 'SKU-0003', 'books', 2, 19.90, 'paid', 0,"
            " %(at)s, %(at)s, now())",
            {"at": GOOD["updated_at"]},
        )
    problems(conn, {"order_id": "300", "customer_id": "9", "updated_at": later})
    assert hold(conn) == 1
    assert release_held(conn, "gold.orders", HELD, RAW, version="updated_at") == 0
    assert held_orders(conn) == {"300": later}, "gold's older version does not settle the newer held one"
    problems(conn, {"order_id": "300", "customer_id": "9", "updated_at": earlier})
    hold(conn)
    assert held_orders(conn) == {"300": later}, "an older row of the key does not replace the held one"


def test_a_held_order_rejected_again_for_another_reason_is_let_go(conn):
    problems(conn, {"order_id": "400", "customer_id": "8"})
    hold(conn)
    assert problems(conn, {"order_id": "400", "status": "teleported"})[0].startswith("breaks known_status")
    assert hold(conn) == 0
    assert held_orders(conn) == {}


def test_a_value_that_quotes_the_foreign_keys_words_is_not_held(conn):
    status = "x is in no row of gold.customers (orders_customer_known)"
    assert problems(conn, {"order_id": "500", "status": status})[0].startswith("breaks known_status")
    assert hold(conn) == 0


def test_the_checks_two_steps_find_what_the_single_query_finds(conn):
    """check_rows marks duplicates by an update after the table is written; problems_query does it
    in one query (the inventory's items): the same rule, the same problems, row for row."""
    rows = [
        {"order_id": "1", "customer_id": None}, {"order_id": "1"}, {"order_id": "1", "status": "shipped"},
        {"order_id": "2"}, {"order_id": "2", "amount": "-1"}, {"order_id": "2", "customer_id": "99"},
        {"order_id": "3", "status": "teleported"}, {"order_id": "3", "status": "lost"}, {"order_id": "4"},
    ]  # fmt: skip
    found = problems(conn, *rows)
    with conn.cursor() as cur:
        contract = read_contract(cur, "gold.orders")
        query = problems_query(
            contract, RAW, list(RAW_ORDER_COLUMNS), order_by="source_row_id", server_version=conn.server_version,
            supplied=("loaded_at",),
        )  # fmt: skip
        cur.execute(query + pgsql_order())
        assert [row[-1] for row in cur.fetchall()] == found
    duplicate = "duplicate order_id (another row of the batch has it)"
    assert [p if p is None or p == duplicate else "bad" for p in found] == [
        "bad", None, duplicate, None, "bad", "bad", "bad", "bad", None,
    ]  # fmt: skip
