"""Strangers on this machine, as the attack tests start them: a process that imitates a
server's command line, and a web server that answers like MLflow on a port of ours."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

from fakenews.processes import port_in_use

# Answers /health with OK and an unknown experiment with MLflow's own error, as a copy
# of MLflow's API would: what a check of the answers alone would take for the real server.
_MIMIC = textwrap.dedent(
    """
    import http.server, json, sys

    class Mimic(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/health"):
                body, status = b"OK", 200
            else:
                body, status = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST"}).encode(), 404
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Mimic).serve_forever()
    """
)


@contextlib.contextmanager
def mimic_mlflow(port: int) -> Iterator[subprocess.Popen]:
    """A stray web server on 127.0.0.1:`port` that answers like MLflow; stopped at the end."""
    stray = subprocess.Popen([sys.executable, "-c", _MIMIC, str(port)])
    try:
        deadline = time.monotonic() + 30
        while not port_in_use("127.0.0.1", port):
            assert stray.poll() is None and time.monotonic() < deadline, "no stray server"
            time.sleep(0.1)
        yield stray
    finally:
        stray.kill()
        stray.wait(10)


@contextlib.contextmanager
def lookalike(*words: str) -> Iterator[subprocess.Popen]:
    """A sleeping process whose command line holds `words` (e.g. "mlflow", "server")."""
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *words])
    try:
        yield stray
    finally:
        stray.kill()
        stray.wait(10)
