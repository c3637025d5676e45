"""HTTP SLO probes for the arena's applications.

The detector's SLO oracle is an HTTP GET that must answer 2xx in time (``STRATUS_SLO_PROBES``); the arena's apps are
reached only through the app plane's ``POST /arena/request``. This tiny gateway turns ``GET /probe/<ns>/<METHOD>/path``
into that call and answers with the app's own status, so faults that leave every pod Ready (a wrong targetPort, a
network fault, a wrong binary) show as SLO violations exactly as a synthetic check would in production. The plane
reports a simulated latency rather than taking it; the gateway waits that long (capped) before answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from arena.apps import AppSpec

MAX_DELAY_S = 5.0
"""Longest simulated latency the gateway reproduces in wall time (above any sensible SLO latency budget)."""


class ProbeGateway:
    def __init__(self, plane_url: str, host: str = "127.0.0.1") -> None:
        self.plane_url = plane_url.rstrip("/")
        http = httpx.Client(timeout=10.0)
        plane = self.plane_url

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.split("/", 4)  # "", "probe", ns, METHOD, path
                if len(parts) < 4 or parts[1] != "probe":
                    self._answer(404, "use /probe/<namespace>/<METHOD>/<path>")
                    return
                ns, method, path = parts[2], parts[3], "/" + (parts[4] if len(parts) > 4 else "")
                try:
                    r = http.post(f"{plane}/arena/request", json={"namespace": ns, "method": method, "path": path})
                    body: dict[str, Any] = r.json()
                    status = int(body.get("status") or 502)
                    # the plane simulates latency instead of spending it: spend it here (capped), so a slow answer
                    # trips the detector's latency budget as a slow frontend would
                    time.sleep(min(float(body.get("latency_ms") or 0.0) / 1000.0, MAX_DELAY_S))
                    self._answer(status if 100 <= status < 600 else 502, str(body.get("error") or "ok"))
                except (httpx.HTTPError, ValueError) as exc:
                    self._answer(502, f"plane unreachable: {exc!r}")

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return

        self._http = http
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="probe-gateway", daemon=True)

    def start(self) -> ProbeGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._http.close()

    def urls(self, app: AppSpec) -> list[str]:
        """One probe per distinct route of the app's workload mix (what wrk2 would hit)."""
        seen: dict[tuple[str, str], None] = {}
        for route in app.workload:
            seen[(route.method, route.path)] = None
        return [f"{self.url}/probe/{app.namespace}/{m}{p}" for m, p in seen]
