"""The data contract of a gold table, read from the warehouse's catalog when a run checks rows.

What a gold table declares in ``sql/warehouse_schema.sql`` is the contract its incoming rows
must keep, so that whatever ingest accepts, the table and every report built on it can hold:

- every NOT NULL column is present;
- every value fits its column's type (range, precision, format);
- every foreign key finds its row (``gold.orders.customer_id`` -> ``gold.customers``);
- every CHECK constraint holds (a non-negative amount, a known status, ...);
- the primary key is unique within the batch (the merge keeps one row per key).

Nothing here names a column: a constraint added to the schema is checked on the next run.
The incoming rows are all text (a staging table that anything loads into); each problem is
reported as a reason a person can read, with the offending value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg2 import sql as pgsql


class ContractError(Exception):
    """The contract cannot be checked as declared (the incoming rows lack a required column)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type() spells it, with its modifiers: numeric(12,2)
    not_null: bool
    has_default: bool


@dataclass(frozen=True)
class Check:
    name: str
    expression: str  # pg_get_expr of the constraint: a boolean over the table's columns
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    name: str
    columns: tuple[str, ...]
    target: str  # schema.table
    target_columns: tuple[str, ...]


@dataclass(frozen=True)
class Contract:
    table: str
    columns: tuple[Column, ...]
    checks: tuple[Check, ...]
    references: tuple[Reference, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
FROM pg_attribute a
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Constraints in the order they were defined, each with the names of its columns (and, for a
# foreign key, the table and columns it refers to).
_CONSTRAINTS = """
SELECT c.conname, c.contype, pg_get_expr(c.conbin, c.conrelid),
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       c.confrelid::regclass::text,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
WHERE c.conrelid = %(table)s::regclass AND c.contype IN ('c', 'f', 'p')
ORDER BY c.oid
"""


def read_contract(cursor, table: str) -> Contract:
    """The contract of ``table`` (``schema.name``) as the warehouse's catalog declares it now."""
    cursor.execute(_COLUMNS, {"table": table})
    columns = tuple(Column(name, type_, not_null, default) for name, type_, not_null, default in cursor.fetchall())
    cursor.execute(_CONSTRAINTS, {"table": table})
    checks, references, key = [], [], ()
    for name, kind, expression, cols, target, target_cols in cursor.fetchall():
        if kind == "c":
            checks.append(Check(name, expression, tuple(cols)))
        elif kind == "f":
            references.append(Reference(name, tuple(cols), target, tuple(target_cols)))
        else:
            key = tuple(cols)
    return Contract(table, columns, tuple(checks), tuple(references), key)


_INTEGER_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


def _fits(server_version: int, value: pgsql.Composable, type_: str, pgsql: ModuleType) -> pgsql.Composable:
    """SQL that is true when the text ``value`` is a valid input of ``type_`` (with its modifiers)."""
    if server_version >= 160000:  # fast, and no subtransaction
        return pgsql.SQL("pg_input_is_valid({}, {})").format(value, pgsql.Literal(type_))
    # Postgres 15: integers by pattern and range, in plain SQL; any other type by a function of
    # the warehouse schema that tries the cast in a subtransaction (about ten times slower).
    if type_ in _INTEGER_RANGES:
        bound = _INTEGER_RANGES[type_]
        return pgsql.SQL(
            "CASE WHEN {v} ~ '^\\s*[-+]?[0-9]{{1,30}}\\s*$' THEN CAST(trim({v}) AS numeric) BETWEEN {low} AND {high}"
            " ELSE false END"
        ).format(v=value, low=pgsql.Literal(-bound), high=pgsql.Literal(bound - 1))
    return pgsql.SQL("staging.value_fits({}, {})").format(value, pgsql.Literal(type_))


def missing_reference(reference: Reference) -> str:
    """How a reason ends when the row's ``reference`` finds no row: after the values it shows,
    which quote_literal ends with a quote (or NULL), so no value can end a reason this way."""
    return f" is in no row of {reference.target} ({reference.name})"


def problems_query(
    contract: Contract,
    incoming: str,
    incoming_columns: list[str],
    *,
    order_by: str,
    server_version: int,
    supplied: tuple[str, ...] = (),
    sql: ModuleType | None = None,
    duplicates: bool = True,
) -> pgsql.Composed:
    """``SELECT incoming.*, problem`` where ``problem`` is the first way a row breaks ``contract``.

    ``incoming`` is an all-text table; ``order_by`` the (numeric) column that decides which
    of two rows with the same key is the first; ``supplied`` the gold columns the pipeline fills itself
    (``loaded_at``). A NOT NULL column without a default that neither the incoming rows nor the
    pipeline supply is a :class:`ContractError`: no incoming row could keep the contract.
    ``sql``: the driver's ``sql`` module the query is composed with (``pg.sql_module(conn)``;
    psycopg2's when not given). ``duplicates=False`` leaves the key's duplicates to
    :func:`mark_duplicates` (the same rule, a cheaper sort over a large batch).
    """
    if sql is None:
        from psycopg2 import sql
    pgsql = sql
    present = [c for c in contract.columns if c.name in incoming_columns]
    missing = [
        c.name
        for c in contract.columns
        if c.not_null and not c.has_default and c.name not in incoming_columns and c.name not in supplied
    ]
    if missing:
        raise ContractError(f"{contract.table} requires {', '.join(missing)}, which the rows of {incoming} do not have")

    raw = {c.name: pgsql.SQL("r.{}").format(pgsql.Identifier(c.name)) for c in present}
    # Each value's fit is computed once per row (lateral "f"), then used by the typed row and the reasons.
    fitting = [c for c in present if c.type != "text"]
    fits_row = pgsql.SQL(", ").join(
        [pgsql.SQL("true AS always")]
        + [
            pgsql.SQL("{} AS {}").format(
                _fits(server_version, raw[c.name], c.type, pgsql), pgsql.Identifier(f"fits_{i}")
            )
            for i, c in enumerate(fitting)
        ]
    )
    fits = {c.name: pgsql.SQL("f.{}").format(pgsql.Identifier(f"fits_{i}")) for i, c in enumerate(fitting)}
    typed = {
        c.name: pgsql.SQL("CASE WHEN {fits} THEN CAST({value} AS {type}) END").format(
            fits=fits[c.name], value=raw[c.name], type=pgsql.SQL(c.type)
        )
        if c.name in fits
        else raw[c.name]
        for c in present
    }
    # Every gold column, typed, under its own name: the CHECK expressions refer to them so.
    typed_row = pgsql.SQL(", ").join(
        pgsql.SQL("{} AS {}").format(
            typed.get(c.name, pgsql.SQL("CAST(NULL AS {})").format(pgsql.SQL(c.type))), pgsql.Identifier(c.name)
        )
        for c in contract.columns
    )
    checks = [check for check in contract.checks if set(check.columns) <= set(raw)]

    def shown(columns) -> pgsql.Composable:
        return pgsql.SQL(" || ', ' || ").join(
            pgsql.SQL("{} || '=' || coalesce(quote_literal({}), 'NULL')").format(pgsql.Literal(name), raw[name])
            for name in columns
        )

    cases: list[pgsql.Composable] = []
    for column in present:
        if column.not_null:
            cases.append(
                pgsql.SQL("WHEN {} IS NULL THEN {}").format(
                    raw[column.name], pgsql.Literal(f"{column.name} is missing")
                )
            )
    for column in present:
        if column.name in fits:
            cases.append(
                pgsql.SQL("WHEN NOT {fits} THEN {reason} || quote_literal({value})").format(
                    fits=fits[column.name],
                    reason=pgsql.Literal(f"{column.name} is not a valid {column.type}: "),
                    value=raw[column.name],
                )
            )
    for reference in contract.references:
        if not set(reference.columns) <= set(raw):
            continue
        match = pgsql.SQL(" AND ").join(
            pgsql.SQL("ref.{} = {}").format(pgsql.Identifier(target), typed[source])
            for source, target in zip(reference.columns, reference.target_columns, strict=True)
        )
        cases.append(
            pgsql.SQL("WHEN NOT EXISTS (SELECT 1 FROM {target} AS ref WHERE {match}) THEN {shown} || {reason}").format(
                target=pgsql.Identifier(*reference.target.split(".")),
                match=match,
                shown=shown(reference.columns),
                reason=pgsql.Literal(missing_reference(reference)),
            )
        )
    for index, check in enumerate(checks):
        cases.append(
            pgsql.SQL("WHEN NOT v.{} THEN {} || {}").format(
                pgsql.Identifier(f"check_{index}"),
                pgsql.Literal(f"breaks {check.name} ({check.expression}): "),
                shown(check.columns),
            )
        )
    # CHECK passes on NULL, as in Postgres; a NULL where NOT NULL is required is caught above.
    verdicts = pgsql.SQL(", ").join(
        [pgsql.SQL("true AS always")]
        + [
            pgsql.SQL("coalesce(({}), true) AS {}").format(pgsql.SQL(check.expression), pgsql.Identifier(f"check_{i}"))
            for i, check in enumerate(checks)
        ]
    )
    # OFFSET 0 keeps the planner from inlining "f" into every place that reads it.
    rows = pgsql.SQL(
        "SELECT r.*, CASE {cases} END AS problem FROM {incoming} AS r"
        " CROSS JOIN LATERAL (SELECT {fits_row} OFFSET 0) AS f"
        " CROSS JOIN LATERAL (SELECT {verdicts} FROM (SELECT {typed_row}) AS t) AS v"
    ).format(
        cases=pgsql.SQL(" ").join(cases) if cases else pgsql.SQL("WHEN false THEN NULL"),
        incoming=pgsql.Identifier(*incoming.split(".")),
        fits_row=fits_row,
        verdicts=verdicts,
        typed_row=typed_row,
    )
    if not duplicates or not (contract.key and set(contract.key) <= set(raw)):
        return rows
    # A key twice in the batch: the first of its rows that keep every other rule is merged, the
    # others are duplicates. A row already rejected for another reason takes no key from a good one
    # (the legacy app's second, corrected write of an order is merged).
    return pgsql.SQL(
        "SELECT {columns}, CASE WHEN c.problem IS NULL AND row_number() OVER"
        " (PARTITION BY {key}, c.problem IS NULL ORDER BY CAST(c.{order} AS numeric)) > 1 THEN {reason}"
        " ELSE c.problem END AS problem FROM ({rows}) AS c"
    ).format(
        columns=pgsql.SQL(", ").join(pgsql.SQL("c.{}").format(pgsql.Identifier(name)) for name in incoming_columns),
        key=pgsql.SQL(", ").join(pgsql.SQL("c.{}").format(pgsql.Identifier(name)) for name in contract.key),
        order=pgsql.Identifier(order_by),
        reason=pgsql.Literal(_duplicate_reason(contract)),
        rows=rows,
    )


def _duplicate_reason(contract: Contract) -> str:
    return f"duplicate {', '.join(contract.key)} (another row of the batch has it)"


def mark_duplicates(cur, contract: Contract, checked: str, *, order_by: str, sql: ModuleType) -> None:
    """Mark the key's duplicates in ``checked`` (written by ``problems_query(duplicates=False)``):
    problems_query's rule, as an update of the few duplicates after a sort of the good rows' keys
    alone (the single query sorts every row whole: twice the check's time at a million rows)."""
    pgsql = sql
    table = pgsql.Identifier(*checked.split("."))
    cur.execute(
        pgsql.SQL(
            "UPDATE {table} AS o SET problem = {reason} FROM (SELECT ctid AS row, row_number() OVER"
            " (PARTITION BY {key} ORDER BY CAST({order} AS numeric)) AS n FROM {table} WHERE problem IS NULL) AS d"
            " WHERE d.n > 1 AND o.ctid = d.row"
        ).format(
            table=table,
            reason=pgsql.Literal(_duplicate_reason(contract)),
            key=pgsql.SQL(", ").join(map(pgsql.Identifier, contract.key)),
            order=pgsql.Identifier(order_by),
        )
    )


# The reasons problems_query writes quote the offending values, for the quarantine file. A
# message that travels further (a task's failure, hence an alert) names the rule alone.
_VALUES_OF_REASON = (
    (re.compile(r"^(?P<rule>.+? is not a valid .+?): .*$", re.DOTALL), r"\g<rule>"),
    (re.compile(r"^breaks (?P<name>\S+) \(.*$", re.DOTALL), r"breaks \g<name>"),
    (re.compile(r"^(?P<shown>.*) (?P<rest>is in no row of \S+ \(\S+\))$", re.DOTALL), None),
    (re.compile(r"^(?P<rule>.+? is not a text): .*$", re.DOTALL), r"\g<rule>"),
)


# One "column=value" of a foreign key's reason: the value as quote_literal writes it (a text's
# quotes doubled, E'..' when it holds a backslash) or NULL, so a value holding ", " or "=" is
# read as one value.
_SHOWN_VALUE = re.compile(r"(?P<column>[^=']+?)=(?:NULL|E?'(?:[^']|'')*')(?:, |$)", re.DOTALL)


def _shown_columns(shown: str) -> str:
    """The column names of ``shown`` ("a='1', b='x, y=z'" -> "a, b"); "a key" if it is not that shape."""
    columns, at = [], 0
    while at < len(shown) and (value := _SHOWN_VALUE.match(shown, at)):
        columns.append(value["column"])
        at = value.end()
    return ", ".join(columns) if columns and at == len(shown) else "a key"


def rule_of(reason: str) -> str:
    """``reason`` without the values it quotes: 'breaks known_status', 'quantity is not a valid integer'."""
    for pattern, replacement in _VALUES_OF_REASON:
        found = pattern.match(reason)
        if found and replacement is None:  # a foreign key: "a='1', b='2' is in no row of ..."
            return f"{_shown_columns(found['shown'])} {found['rest']}"
        if found:
            return found.expand(replacement)
    return reason


def check_rows(conn, contract_table: str, incoming: str, output: str, *, order_by: str, supplied=()) -> Contract:
    """Write ``output``: every row of ``incoming`` with ``problem``, the first contract it breaks (or NULL)."""
    from include.shopstream.platform.pg import server_version, sql_module

    pgsql = sql_module(conn)
    with conn.cursor() as cur:
        contract = read_contract(cur, contract_table)
        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (incoming,),
        )
        incoming_columns = [row[0] for row in cur.fetchall()]
        query = problems_query(
            contract,
            incoming,
            incoming_columns,
            order_by=order_by,
            server_version=server_version(conn),
            supplied=tuple(supplied),
            sql=pgsql,
            duplicates=False,
        )
        output_id = pgsql.Identifier(*output.split("."))
        cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(output_id))
        # Logged, as every table a later task reads: Postgres empties an unlogged table when it
        # recovers from a crash (a backend killed by the OOM killer is enough), and the run's next
        # tasks would then find no valid and no rejected rows, and merge nothing.
        cur.execute(pgsql.SQL("CREATE TABLE {} AS ").format(output_id) + query)
        if contract.key and set(contract.key) <= set(incoming_columns):
            mark_duplicates(cur, contract, output, order_by=order_by, sql=pgsql)
    return contract


# -- Rows that wait for the row they refer to ---------------------------------------------------
# A row whose foreign key finds no row may only be early: its customer is quarantined today and
# fixed tomorrow. It is quarantined with its reason like any other, and also held; each later
# batch takes it in again once every row it refers to is there, until the gold table holds it.


def _held_columns(cur, held: str, incoming: str) -> list[str]:
    """The columns ``held`` shares with ``incoming``, in ``held``'s order."""
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        (held,),
    )
    held_columns = [row[0] for row in cur.fetchall()]
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (incoming,),
    )
    present = {row[0] for row in cur.fetchall()}
    return [name for name in held_columns if name in present]


def release_held(conn, contract_table: str, held: str, incoming: str, *, version: str) -> int:
    """Add to ``incoming`` the rows of ``held`` whose references all hold now, unless ``incoming``
    has a row of their key (a newer one came); first drop the held rows that the gold table holds
    at their ``version`` or a newer one (a run merged them). Returns the rows added."""
    from include.shopstream.platform.pg import sql_module

    pgsql = sql_module(conn)
    with conn.cursor() as cur:
        contract = read_contract(cur, contract_table)
        columns = _held_columns(cur, held, incoming)

        def typed(name: str) -> pgsql.Composable:
            return pgsql.SQL("CAST(h.{} AS {})").format(pgsql.Identifier(name), pgsql.SQL(contract.column(name).type))

        held_id, incoming_id = pgsql.Identifier(*held.split(".")), pgsql.Identifier(*incoming.split("."))
        same_key = pgsql.SQL(" AND ").join(
            pgsql.SQL("g.{} = {}").format(pgsql.Identifier(k), typed(k)) for k in contract.key
        )
        cur.execute(
            pgsql.SQL(
                "DELETE FROM {held} AS h USING {gold} AS g WHERE {same_key} AND g.{version} >= {held_version}"
            ).format(
                held=held_id,
                gold=pgsql.Identifier(*contract.table.split(".")),
                same_key=same_key,
                version=pgsql.Identifier(version),
                held_version=typed(version),
            )
        )
        found = [
            pgsql.SQL("EXISTS (SELECT 1 FROM {target} AS ref WHERE {match})").format(
                target=pgsql.Identifier(*reference.target.split(".")),
                match=pgsql.SQL(" AND ").join(
                    pgsql.SQL("ref.{} = {}").format(pgsql.Identifier(target), typed(source))
                    for source, target in zip(reference.columns, reference.target_columns, strict=True)
                ),
            )
            for reference in contract.references
        ]
        newer_came = pgsql.SQL("NOT EXISTS (SELECT 1 FROM {incoming} AS r WHERE {match})").format(
            incoming=incoming_id,
            match=pgsql.SQL(" AND ").join(
                pgsql.SQL("r.{k} = h.{k}").format(k=pgsql.Identifier(k)) for k in contract.key
            ),
        )
        names = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        cur.execute(
            pgsql.SQL(
                "INSERT INTO {incoming} ({names}) SELECT {held_names} FROM {held} AS h WHERE {conditions}"
            ).format(
                incoming=incoming_id,
                names=names,
                held_names=pgsql.SQL(", ").join(pgsql.SQL("h.{}").format(pgsql.Identifier(c)) for c in columns),
                held=held_id,
                conditions=pgsql.SQL(" AND ").join([*found, newer_came]),
            )
        )
        return max(cur.rowcount, 0)


def hold_unreferenced(conn, contract: Contract, held: str, checked: str, *, order_by: str, version: str) -> int:
    """Hold the rows of ``checked`` that only wait for a row they refer to (the newest of each key;
    a held row of that key is replaced by a row of the same or a newer ``version``); and let go of
    the held keys that ``checked`` rejected for another reason (quarantined today, for good).
    Returns the rows held now."""
    from include.shopstream.platform.pg import sql_module

    pgsql = sql_module(conn)
    if not contract.references or not contract.key:
        return 0
    with conn.cursor() as cur:
        columns = _held_columns(cur, held, checked)
        held_id, checked_id = pgsql.Identifier(*held.split(".")), pgsql.Identifier(*checked.split("."))
        waits = pgsql.SQL(" OR ").join(
            pgsql.SQL("right(c.problem, {n}) = {suffix}").format(
                n=pgsql.Literal(len(missing_reference(reference))), suffix=pgsql.Literal(missing_reference(reference))
            )
            for reference in contract.references
        )
        key = pgsql.SQL(", ").join(map(pgsql.Identifier, contract.key))
        names = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        version_type = pgsql.SQL(contract.column(version).type)
        cur.execute(
            pgsql.SQL(
                "DELETE FROM {held} AS h USING {checked} AS c WHERE {same_key}"
                " AND c.problem IS NOT NULL AND NOT ({waits})"
            ).format(
                held=held_id,
                checked=checked_id,
                same_key=pgsql.SQL(" AND ").join(
                    pgsql.SQL("c.{k} = h.{k}").format(k=pgsql.Identifier(k)) for k in contract.key
                ),
                waits=waits,
            )
        )
        cur.execute(
            pgsql.SQL(
                "INSERT INTO {held} ({names}) SELECT DISTINCT ON ({key}) {names} FROM {checked} AS c WHERE {waits}"
                " ORDER BY {key}, CAST(c.{order_by} AS numeric) DESC"
                " ON CONFLICT ({key}) DO UPDATE SET {updates}"
                " WHERE CAST(EXCLUDED.{version} AS {version_type}) >= CAST({held}.{version} AS {version_type})"
            ).format(
                held=held_id,
                names=names,
                key=key,
                checked=checked_id,
                waits=waits,
                order_by=pgsql.Identifier(order_by),
                updates=pgsql.SQL(", ").join(
                    pgsql.SQL("{c} = EXCLUDED.{c}").format(c=pgsql.Identifier(c)) for c in columns
                ),
                version=pgsql.Identifier(version),
                version_type=version_type,
            )
        )
        return max(cur.rowcount, 0)
