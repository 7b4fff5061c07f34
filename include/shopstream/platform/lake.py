"""The lake: its hook, overwrite-by-partition, and moving rows from Postgres into it in bounded
memory (COPY streamed through parts). Where each file goes is declared in ``outputs.py``.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import deque
from contextlib import closing
from dataclasses import dataclass

from include.shopstream.platform.names import BUCKET, LAKE_CONN_ID, lake_uri

PART_ROWS = 200_000  # rows per raw part: what one load step holds in memory at a time
EXPORT_BATCH_ROWS = 50_000  # rows per Parquet row group written by export_query_to_parquet
TAIL_BYTES = 65_536  # how much of a part's end is read for its last key


def lake_hook():
    """The lake's S3 hook."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=LAKE_CONN_ID)


def replace_prefix(prefix: str) -> None:
    """Delete every object under ``s3://shopstream/<prefix>`` (overwrite-by-partition)."""
    hook = lake_hook()
    keys = hook.list_keys(bucket_name=BUCKET, prefix=prefix.rstrip("/") + "/")
    if keys:
        hook.delete_objects(bucket=BUCKET, keys=keys)


@dataclass
class Extract:
    prefix: str
    rows: int
    parts: int

    @property
    def uri(self) -> str:
        return lake_uri(f"{self.prefix}/")


def copy_query_to_lake(conn, query: str, params: dict, prefix: str, *, paged: bool = False) -> Extract:
    """Write the rows of ``query`` as CSV parts under ``prefix``, replacing what was there.

    With ``paged``, the query takes ``after`` and ``limit`` parameters and returns rows whose
    first column is an increasing key; each part then holds at most ``PART_ROWS`` rows.
    """
    from include.shopstream.platform.pg import bind, copy_out

    replace_prefix(prefix)
    hook = lake_hook()
    rows = parts = 0
    after = 0
    while True:
        bound = dict(params, after=after, limit=PART_ROWS) if paged else params
        with tempfile.NamedTemporaryFile("w+b", suffix=".csv") as part, conn.cursor() as cur:
            statement = bind(cur, query, bound)
            count = copy_out(cur, f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER true)", part)
            if count == 0 and parts > 0:
                break
            part.flush()
            if count or parts == 0:
                key = f"{prefix}/part-{parts:05d}.csv"
                hook.load_file(part.name, key=key, bucket_name=BUCKET, replace=True)
                parts += 1
                rows += count
            if paged and count:
                after = _last_key(part)
        if not paged or count < PART_ROWS:
            break
    return Extract(prefix=prefix, rows=rows, parts=parts)


def _last_key(part) -> int:
    """The first column of the last CSV row of ``part``.

    Read from the part's end when its last line holds no quote: that line then starts a row (a
    quoted value that carried a newline into it would have to close there). Otherwise the part is
    read through from the start, as a newline inside a quoted value may have split the row.
    """
    part.seek(0, 2)
    size = part.tell()
    part.seek(max(0, size - TAIL_BYTES))
    _, newline, last = part.read().rstrip(b"\n").rpartition(b"\n")
    if (newline or size <= TAIL_BYTES) and b'"' not in last:
        return int(last.split(b",", 1)[0])
    part.seek(0)
    text = io.TextIOWrapper(part, encoding="utf-8", newline="")
    try:
        [last_row] = deque(csv.reader(text), maxlen=1)
    finally:
        text.detach()  # the part stays open for its caller
    return int(last_row[0])


def extract_from_source(sql_file: str, prefix: str, params: dict | None = None, *, paged: bool = False) -> Extract:
    """Run ``sql/<sql_file>`` on the source database and land its rows under ``prefix``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from include.shopstream.platform.names import SOURCE_CONN_ID, sql

    with closing(PostgresHook(postgres_conn_id=SOURCE_CONN_ID).get_conn()) as conn:
        extract = copy_query_to_lake(conn, sql(sql_file), params or {}, prefix, paged=paged)
    print(f"extracted {extract.rows} rows in {extract.parts} part(s) to {extract.uri}")
    return extract


def export_query_to_parquet(engine, query: str, params: dict, key: str, *, batch_rows: int = EXPORT_BATCH_ROWS) -> int:
    """Write the rows of ``query`` to one Parquet object at ``key``, ``batch_rows`` at a time.

    What ``aql.export_to_file`` writes (``pandas.read_sql`` then ``to_parquet``), without
    holding the whole result: a server-side cursor feeds ``read_sql`` in batches, each batch
    becomes a row group of a file on local disk, and the file is uploaded when complete, so
    readers never see a partial object. Returns the rows written.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import text

    rows = 0
    with tempfile.NamedTemporaryFile(suffix=".parquet") as local, engine.connect() as conn:
        streaming = conn.execution_options(stream_results=True, max_row_buffer=batch_rows)
        writer = None
        try:
            for batch in pd.read_sql(text(query), streaming, params=params, chunksize=batch_rows):
                table = pa.Table.from_pandas(batch, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(local.name, table.schema)
                writer.write_table(table.cast(writer.schema))
                rows += len(batch)
        finally:
            if writer is not None:
                writer.close()
        lake_hook().load_file(local.name, key=key, bucket_name=BUCKET, replace=True)
    return rows
