"""Statements on the local platform's databases, Airflow's metadata database among them."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extras

from localdev.layout import METADATA_DB
from localdev.profile import Profile
from localdev.services import BackingServices


@dataclass
class MetadataDb:
    """Rows of one platform's databases, read through its Postgres (``services.pg``)."""

    services: BackingServices
    profile: Profile  # the metadata database's names

    def query(self, database: str, statement: str, params=None) -> list[dict]:
        """Rows of one statement on one of the stack's databases, as dicts (none for a command)."""
        conn = self.services.pg.connect(database)
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(statement, params)
                return [dict(row) for row in cur.fetchall()] if cur.description else []
        finally:
            conn.close()

    def metadata(self, statement: str, params=None) -> list[dict]:
        """Rows of one statement on Airflow's metadata database.

        Written with Airflow 2's names (``execution_date``, the ``dataset`` tables); on Airflow 3
        they are rewritten to its own (``logical_date``, the ``asset`` tables).
        """
        return self.query(METADATA_DB, self.profile.sql(statement), params)
