"""The inventory API simulator: stock levels per SKU over HTTP, unreliable on purpose.

ShopStream's real inventory API times out or errors on about one call in ten; this simulator
does the same on a configurable share of calls so that retries are exercised locally.

    GET  /health                       always answers 200
    GET  /v1/stock?page=1&page_size=N  one page of stock levels
    POST /admin/faults                 {"failure_rate": 0.5} changes the share at run time

Run it with ``python -m localdev.inventory_api --port 8081``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from localdev.layout import ROOT
from localdev.processes import Service, launch

SKU_FORMAT = "SKU-{:05d}"
WAREHOUSES = ("AMS", "DFW", "SIN")
MAX_PAGE_SIZE = 1000


def sku(index: int) -> str:
    """The SKU of the ``index``-th product (1-based), as the source catalog names it."""
    return SKU_FORMAT.format(index)


class FaultPlan:
    """Decides, call by call, whether the simulator answers, errors or stalls.

    Failures split evenly between an HTTP 503 and a stall longer than any sane client
    timeout. The decisions come from one seeded generator, so a fixed seed gives a fixed
    sequence.
    """

    def __init__(self, failure_rate: float, seed: int | None = None) -> None:
        self.failure_rate = validate_rate(failure_rate)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str:
        with self._lock:
            roll = self._rng.random()
            if roll >= self.failure_rate:
                return "ok"
            return "error" if self._rng.random() < 0.5 else "timeout"


def validate_rate(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"failure rate must be between 0 and 1, got {value}")
    return value


def stock_level(seed: int, sku_id: str, as_of: datetime) -> dict:
    """Deterministic stock for ``sku_id`` within the hour of ``as_of``."""
    hour = as_of.strftime("%Y-%m-%dT%H")
    digest = hashlib.sha256(f"{seed}:{sku_id}:{hour}".encode()).digest()
    on_hand = int.from_bytes(digest[:2], "big") % 500
    reserved = min(on_hand, digest[2] % 40)
    return {
        "sku": sku_id,
        "warehouse": WAREHOUSES[digest[3] % len(WAREHOUSES)],
        "on_hand": on_hand,
        "reserved": reserved,
    }


@dataclass
class Catalog:
    skus: int
    seed: int

    def page(self, number: int, size: int, as_of: datetime) -> dict:
        start = (number - 1) * size
        indexes = range(start + 1, min(start + size, self.skus) + 1)
        return {
            "as_of": as_of.isoformat(),
            "page": number,
            "page_size": size,
            "total": self.skus,
            "next_page": number + 1 if start + size < self.skus else None,
            "items": [stock_level(self.seed, sku(i), as_of) for i in indexes],
        }


def make_handler(catalog: Catalog, faults: FaultPlan, stall_seconds: float):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ShopStreamInventorySimulator/1"

        def log_message(self, fmt: str, *args) -> None:  # one line per call, to the log file
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

        def _send(self, status: HTTPStatus, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                return self._send(HTTPStatus.OK, {"status": "ok"})
            if url.path != "/v1/stock":
                return self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})
            query = parse_qs(url.query)
            try:
                number = int(query.get("page", ["1"])[0])
                size = int(query.get("page_size", ["500"])[0])
                if number < 1 or not 1 <= size <= MAX_PAGE_SIZE:
                    raise ValueError
            except ValueError:
                return self._send(
                    HTTPStatus.BAD_REQUEST,
                    {"error": f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}"},
                )
            outcome = faults.draw()
            if outcome == "error":
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "inventory backend unavailable"})
            if outcome == "timeout":
                time.sleep(stall_seconds)
                return self._send(HTTPStatus.GATEWAY_TIMEOUT, {"error": "inventory backend timed out"})
            return self._send(HTTPStatus.OK, catalog.page(number, size, datetime.now(UTC)))

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/admin/faults":
                return self._send(HTTPStatus.NOT_FOUND, {"error": "no such route"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                faults.failure_rate = validate_rate(float(body["failure_rate"]))
            except (ValueError, KeyError, TypeError) as err:
                return self._send(HTTPStatus.BAD_REQUEST, {"error": f"bad fault setting: {err}"})
            return self._send(HTTPStatus.OK, {"failure_rate": faults.failure_rate})

    return Handler


def serve(host: str, port: int, *, skus: int, seed: int, failure_rate: float, stall_seconds: float):
    """Build the HTTP server (not yet serving); the caller runs ``serve_forever``."""
    catalog = Catalog(skus=skus, seed=seed)
    handler = make_handler(catalog, FaultPlan(failure_rate, seed), stall_seconds)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start(
    port: int,
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    failure_rate: float = 0.1,
    seed: int = 42,
    skus: int = 500,
    stall_seconds: float = 30.0,
) -> Service:
    """Start the simulator as a child process and wait until it answers."""
    validate_rate(failure_rate)
    return launch(
        "inventory API simulator",
        "localdev.inventory_api",
        [
            "--host",
            host,
            "--port",
            str(port),
            "--failure-rate",
            str(failure_rate),
            "--seed",
            str(seed),
            "--skus",
            str(skus),
            "--stall-seconds",
            str(stall_seconds),
        ],
        log_path,
        cwd=ROOT,
        host=host,
        port=port,
        setting="SHOPSTREAM_INVENTORY_API_PORT",
        health="/health",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--failure-rate", type=float, default=0.1, help="share of stock calls that fail")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--stall-seconds", type=float, default=30.0, help="how long a 'timeout' stalls")
    args = parser.parse_args(argv)
    try:
        validate_rate(args.failure_rate)
        server = serve(
            args.host,
            args.port,
            skus=args.skus,
            seed=args.seed,
            failure_rate=args.failure_rate,
            stall_seconds=args.stall_seconds,
        )
    except (ValueError, OSError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"inventory API simulator on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
