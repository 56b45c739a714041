"""Stand-ins for the app in launcher tests, so they need neither the API nor a worker.

    fake_app.py launch RECORD WORKER_EXIT_AFTER [run.py options...]
        runs devstack.run.main with the stand-ins below as its commands, and QUICK_RESTARTS
    fake_app.py migrate RECORD              records the env it got, then exits 0
    fake_app.py worker RECORD EXIT_AFTER    sleeps; exits 3 after EXIT_AFTER s unless it is 0
    fake_app.py api RECORD --port PORT      answers GET /healthz with 200

RECORD also tags every stand-in's argv, so a test can find its own leftovers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from devstack.supervisor import RestartPolicy

RECORDED_KEYS = ("DATABASE_URL", "TEMPORAL_ADDRESS", "S3_ENDPOINT_URL", "S3_BUCKET")
# The default policy's shape on a faster clock, so crash loops end within seconds. A stand-in
# starts in well under a second, so an exit after 0.1 s falls within the start window and an
# exit after 3 s does not.
QUICK_RESTARTS = RestartPolicy(
    first_delay=0.2, max_delay=1.0, healthy_after=5.0, start_window=2.0, max_start_crashes=3
)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the api log quiet


def _launch(record: str, worker_exit_after: str, options: Sequence[str]) -> int:
    from devstack.run import AppCommands, main

    me = [sys.executable, str(Path(__file__).resolve())]
    commands = AppCommands(
        migrate=[*me, "migrate", record],
        worker=[*me, "worker", record, worker_exit_after],
        api=[*me, "api", record],
        cwd=Path.cwd(),
    )
    return main(options, commands, QUICK_RESTARTS)


def _worker(exit_after: float) -> int:
    time.sleep(exit_after or 3600)
    return 3


def main(argv: Sequence[str]) -> int:
    mode, *rest = argv
    if mode == "launch":
        return _launch(rest[0], rest[1], rest[2:])
    if mode == "migrate":
        recorded = {key: os.environ.get(key) for key in RECORDED_KEYS}
        Path(rest[0]).write_text(json.dumps(recorded))
        return 0
    if mode == "worker":
        return _worker(float(rest[1]))
    if mode == "api":
        HTTPServer(("127.0.0.1", int(rest[2])), _Health).serve_forever()
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
