"""Fill ShopStream's source database with synthetic history, and keep it growing.

    python -m localdev.seed --days 21            # the last three weeks, up to yesterday
    python -m localdev.seed --day 2026-11-24     # one day

Seeding is idempotent: ``seed_progress`` records how far each day was written, so a second
run writes nothing twice; customers and products are upserted. ``make run`` also trickles
today's orders in as the day goes on. It is development tooling, never a DAG.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2

from localdev import LocalDevError
from localdev.generator import Scale, ShopStreamData
from localdev.postgres import PASSWORD, SUPERUSER

SCHEMA_SQL = Path(__file__).with_name("sql") / "source_schema.sql"
ORDER_COLUMNS = (
    "order_id", "customer_id", "product_id", "quantity", "amount",
    "status", "refunded_amount", "created_at", "updated_at",
)  # fmt: skip


def _copy(cur, table: str, columns: Iterable[str], rows: Iterable[dict]) -> None:
    columns = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer)


def ensure_schema(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())
    conn.commit()


def seed_reference_data(conn, data: ShopStreamData) -> None:
    """Upsert customers and products."""
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE incoming_customers (LIKE customers) ON COMMIT DROP")
        _copy(cur, "incoming_customers", data.customers()[0].keys(), data.customers())
        cur.execute("INSERT INTO customers SELECT * FROM incoming_customers ON CONFLICT (customer_id) DO NOTHING")
        cur.execute("CREATE TEMP TABLE incoming_products (LIKE products) ON COMMIT DROP")
        _copy(cur, "incoming_products", data.products()[0].keys(), data.products())
        cur.execute("INSERT INTO products SELECT * FROM incoming_products ON CONFLICT (product_id) DO NOTHING")
    conn.commit()


def seed_day(conn, data: ShopStreamData, day: date, until: datetime | None = None) -> int:
    """Write ``day``'s orders and changes up to ``until`` (default: the whole day), once.

    Returns how many rows (inserts and changes) were new. One transaction per call.
    """
    day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    until = min(until or day_end, day_end)
    with conn.cursor() as cur:
        cur.execute("SELECT up_to FROM seed_progress WHERE day = %s FOR UPDATE", (day,))
        found = cur.fetchone()
        since = found[0] if found else datetime.min.replace(tzinfo=UTC)
        if since >= until:
            return 0
        generated = data.day(day)
        orders = [o for o in generated.orders if since <= o["updated_at"] < until]
        changes = [c for c in generated.changes if since <= c["updated_at"] < until]
        _copy(cur, "orders", ORDER_COLUMNS, orders)
        if changes:
            cur.execute(
                "CREATE TEMP TABLE incoming_changes (order_id bigint, status text, refunded_amount numeric,"
                " updated_at timestamptz) ON COMMIT DROP"
            )
            _copy(cur, "incoming_changes", ("order_id", "status", "refunded_amount", "updated_at"), changes)
            cur.execute(
                "UPDATE orders o SET status = c.status, refunded_amount = c.refunded_amount, updated_at = c.updated_at"
                " FROM incoming_changes c WHERE o.order_id = c.order_id"
            )
        cur.execute(
            "INSERT INTO seed_progress (day, up_to) VALUES (%s, %s)"
            " ON CONFLICT (day) DO UPDATE SET up_to = EXCLUDED.up_to",
            (day, until),
        )
    conn.commit()
    return len(orders) + len(changes)


def seed(dsn: str, days: list[date], data: ShopStreamData, until: datetime | None = None) -> int:
    """Seed ``days`` in order (the last one only up to ``until``); return the rows written."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.OperationalError as err:
        raise LocalDevError(f"cannot reach the source database: {str(err).strip().splitlines()[0]}") from None
    try:
        ensure_schema(conn)
        seed_reference_data(conn, data)
        return sum(seed_day(conn, data, day, until) for day in sorted(days))
    finally:
        conn.close()


def local_source_dsn() -> str:
    """The source database of the platform that `make run` starts (or SHOPSTREAM_POSTGRES_URL's server)."""
    base = os.environ.get("SHOPSTREAM_POSTGRES_URL") or (
        f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{os.environ.get('SHOPSTREAM_POSTGRES_PORT', '5433')}"
    )
    return (
        base.rstrip("/").rsplit("/", 1)[0] + "/shopstream_source"
        if base.count("/") > 2
        else base + "/shopstream_source"
    )


def history(days: int, today: date | None = None) -> list[date]:
    """The ``days`` days before ``today``."""
    today = today or datetime.now(UTC).date()
    return [today - timedelta(days=n) for n in range(days, 0, -1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("SHOPSTREAM_SOURCE_DSN") or local_source_dsn(),
        help="source database DSN (default: the one `make run` starts)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--days", type=int, default=21, help="seed this many days up to yesterday (default 21)")
    when.add_argument("--day", type=date.fromisoformat, action="append", help="seed this day (repeatable)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders-per-day", type=int, default=Scale.orders_per_day)
    parser.add_argument("--bad-share", type=float, default=0.01, help="share of contract-breaking rows")
    parser.add_argument("--follow", action="store_true", help="then keep adding today's orders as the day goes on")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between additions with --follow")
    args = parser.parse_args(argv)
    try:
        if args.days is not None and args.days < 0:
            raise LocalDevError("--days must be 0 or more")
        try:
            scale = Scale(orders_per_day=args.orders_per_day, bad_share=args.bad_share)
        except ValueError as err:
            raise LocalDevError(str(err)) from None
        data = ShopStreamData(seed=args.seed, scale=scale)
        days = args.day or history(args.days)
        written = seed(args.dsn, days, data)
        print(f"seeded {len(days)} day(s): {written} new rows" if days else "nothing to seed", flush=True)
        while args.follow:
            now = datetime.now(UTC)
            written = seed(args.dsn, [now.date() - timedelta(days=1), now.date()], data, until=now)
            print(f"{now:%H:%M:%S} added {written} rows", flush=True)
            time.sleep(args.interval)
    except LocalDevError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
