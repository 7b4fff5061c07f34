"""A local stand-in for the Slack webhook and the PagerDuty Events API v2.

It answers the way those services do (Slack: 200 ``ok``; PagerDuty: 202 with the dedup key)
and keeps every payload, so that a developer can read the alerts the platform would have
sent (``GET /messages``) and tests can assert on them. Nothing leaves the machine.

Run it with ``python -m localdev.alert_sink --port 8082``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from localdev.layout import ROOT
from localdev.processes import Service, launch


class Inbox:
    """Every payload received, in order, optionally appended to a JSON-lines file."""

    def __init__(self, journal: Path | None = None) -> None:
        self.messages: list[dict] = []
        self.journal = journal
        self._lock = threading.Lock()

    def add(self, path: str, body: object) -> dict:
        message = {"received_at": datetime.now(UTC).isoformat(), "path": path, "body": body}
        with self._lock:
            self.messages.append(message)
            if self.journal is not None:
                with self.journal.open("a") as out:
                    out.write(json.dumps(message) + "\n")
        return message


def make_handler(inbox: Inbox):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ShopStreamAlertSink/1"

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {fmt % args}\n")

        def _send(self, status: HTTPStatus, body: object, content_type: str = "application/json") -> None:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/health":
                return self._send(HTTPStatus.OK, {"status": "ok"})
            if self.path == "/messages":
                return self._send(HTTPStatus.OK, inbox.messages)
            return self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError:
                return self._send(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
            inbox.add(self.path, body)
            if self.path.startswith("/pagerduty"):
                dedup_key = (body or {}).get("dedup_key") if isinstance(body, dict) else None
                return self._send(
                    HTTPStatus.ACCEPTED,
                    {"status": "success", "message": "Event processed", "dedup_key": dedup_key or uuid.uuid4().hex},
                )
            return self._send(HTTPStatus.OK, "ok", content_type="text/plain")

    return Handler


def serve(host: str, port: int, journal: Path | None = None) -> tuple[ThreadingHTTPServer, Inbox]:
    inbox = Inbox(journal)
    server = ThreadingHTTPServer((host, port), make_handler(inbox))
    server.daemon_threads = True
    return server, inbox


def start(port: int, log_path: Path, *, journal: Path | None = None, host: str = "127.0.0.1") -> Service:
    """Start the sink as a child process and wait until it answers."""
    args = ["--host", host, "--port", str(port)]
    if journal is not None:
        args += ["--journal", str(journal)]
    return launch(
        "alert sink",
        "localdev.alert_sink",
        args,
        log_path,
        cwd=ROOT,
        host=host,
        port=port,
        setting="SHOPSTREAM_ALERT_SINK_PORT",
        health="/health",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--journal", type=Path, help="append every payload to this JSON-lines file")
    args = parser.parse_args(argv)
    try:
        server, _ = serve(args.host, args.port, args.journal)
    except OSError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"alert sink on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
