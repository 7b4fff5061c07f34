"""The services Airflow works against locally: Postgres, the mocked S3, the inventory API
simulator and the alert sink, started (or attached to) on the platform's loopback ports."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from localdev import alert_sink, inventory_api, postgres, s3, seed
from localdev.generator import Scale, ShopStreamData
from localdev.layout import METADATA_DB, SOURCE_DB, WAREHOUSE_DB, Ports
from localdev.processes import ensure_port_free
from localdev.profile import Profile
from localdev.tracking import Tracker


def platform_data() -> ShopStreamData:
    """What ``make run`` seeds: the generator's default scale, 1% of the rows breaking the contract."""
    return ShopStreamData(scale=Scale(bad_share=0.01))


@dataclass
class BackingServices:
    """The databases, the lake and the simulators of one platform, and where they listen.

    ``pg`` and ``lake`` are set by :meth:`start` or :meth:`attach`, or by a test that brings its own.
    """

    state_dir: Path
    tracker: Tracker  # each service is recorded as it starts
    profile: Profile  # names the web process whose port is checked with the others
    ports: Ports = field(default_factory=Ports)
    postgres_url: str | None = None
    failure_rate: float = 0.1
    history_days: int = 21
    data: ShopStreamData = field(default_factory=platform_data)
    pg: postgres.PostgresServer | None = None
    lake: s3.S3Server | None = None

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def start(self) -> None:
        """Postgres (embedded unless ``postgres_url``), moto S3, the simulator, the alert sink."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        if self.postgres_url:
            self.pg = postgres.connect_external(self.postgres_url)
        else:
            self.pg = postgres.start_embedded(
                self.state_dir / "postgres", self.ports.postgres, self.logs / "postgres.log"
            )
            self.tracker.track(self.pg.service)
        for database in (METADATA_DB, SOURCE_DB, WAREHOUSE_DB):
            self.pg.ensure_database(database)
        self.seed_source(history_days=self.history_days)
        self.lake = s3.start(self.ports.s3, self.logs / "s3.log")
        self.tracker.track(self.lake.service)
        self.lake.restore(self.state_dir / "s3")
        self.lake.ensure_bucket("shopstream")
        # Snapshot the lake before moto (which keeps it in memory only) goes away.
        self.lake.service.on_stop.append(self._snapshot_s3)
        self.tracker.track(
            inventory_api.start(
                self.ports.inventory_api, self.logs / "inventory_api.log", failure_rate=self.failure_rate
            )
        )
        self.tracker.track(
            alert_sink.start(
                self.ports.alert_sink, self.logs / "alert_sink.log", journal=self.state_dir / "alerts.jsonl"
            )
        )

    def attach(self) -> None:
        """Point at the services of a platform that is already running (for `localdev airflow`)."""
        if self.postgres_url:
            self.pg = postgres.connect_external(self.postgres_url)
        else:
            self.pg = postgres.PostgresServer("127.0.0.1", self.ports.postgres, postgres.SUPERUSER, postgres.PASSWORD)
        self.lake = s3.S3Server(endpoint_url=f"http://127.0.0.1:{self.ports.s3}")

    def seed_source(self, history_days: int = 0) -> int:
        """Seed the source database's history, then today's orders up to now (idempotent)."""
        now = datetime.now(UTC)
        days = [*seed.history(history_days, now.date()), now.date() - timedelta(days=1), now.date()]
        return seed.seed(self.pg.url(SOURCE_DB), sorted(set(days)), self.data, until=now)

    def endpoints(self) -> list[str]:
        """``--endpoint`` arguments that point ``airflow_settings.yaml``'s hosts at these services."""
        pg_auth = self.pg.user + (f":{self.pg.password}" if self.pg.password else "")
        return [
            f"shopstream-db={pg_auth}@{self.pg.host}:{self.pg.port}",
            f"moto=127.0.0.1:{self.ports.s3}",
            f"inventory-api=127.0.0.1:{self.ports.inventory_api}",
            f"alert-sink=127.0.0.1:{self.ports.alert_sink}",
        ]

    def _check_ports(self) -> None:
        wanted = [
            ("webserver", self.profile.web.name),
            ("s3", "mocked S3"),
            ("inventory_api", "inventory API simulator"),
            ("alert_sink", "alert sink"),
            ("log_server", "Airflow task log server"),
        ]
        if not self.postgres_url:
            wanted.append(("postgres", "embedded Postgres"))
        for name, label in wanted:
            ensure_port_free("127.0.0.1", getattr(self.ports, name), label, Ports.SETTINGS[name])

    def _snapshot_s3(self) -> None:
        target = self.state_dir / "s3"
        staging = self.state_dir / "s3.new"
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            count = self.lake.snapshot(staging)
        except Exception as err:  # noqa: BLE001 - keep the previous snapshot rather than lose it
            print(f"warning: could not snapshot the mocked S3 ({err}); kept the previous snapshot", file=sys.stderr)
            return
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        print(f"saved {count} S3 objects to {target}")
