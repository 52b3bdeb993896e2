"""A loopback stand-in for the ODRE portal (OpenDataSoft Explore API v2.1): ``exports/json``
(one JSON array) and ``records`` (pages of ``limit`` rows from ``offset``, with
``total_count``), filtered by the ``where`` window aggregat sends and ordered by its field;
503 faults with ``Retry-After`` on demand; every request is logged."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd

_WHERE = re.compile(r"^(\w+) >= date'([^']+)' and (\w+) < date'([^']+)'$")
_PATH = re.compile(r"^/api/explore/v2\.1/catalog/datasets/([\w.-]+)/(exports/json|records)$")


def eco2mix_rows(start: datetime, days: int, step_min: int = 15, realised_until=None):
    """éCO2mix rows as the portal returns them: ``date_heure`` with a Paris offset, values in
    MW; after ``realised_until`` only RTE's forecasts (``consommation`` null)."""
    rows = []
    for k in range(days * 24 * 60 // step_min):
        t = pd.Timestamp(start) + pd.Timedelta(minutes=step_min * k)
        base = 50000 + 10000 * ((k % 96) / 96)
        realised = realised_until is None or t < pd.Timestamp(realised_until)
        rows.append({"date_heure": t.tz_convert("Europe/Paris").isoformat(),
                     "consommation": int(base) if realised else None,
                     "prevision_j1": int(base) + 300, "prevision_j": int(base) + 100,
                     "perimetre": "France"})
    return rows


def tempo_rows(first: str, colours: list[str]):
    day = datetime.fromisoformat(first)
    return [{"jour": (day + timedelta(days=i)).strftime("%Y-%m-%d"), "couleur": c}
            for i, c in enumerate(colours)]


class OdreServer:
    """``with OdreServer({"eco2mix-national-tr": rows}) as s: s.url``."""

    def __init__(self, datasets: dict[str, list[dict]]) -> None:
        self.datasets = datasets
        self.faults: list[int] = []  # statuses answered before the real answers, in order
        self.log: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.log.append(self.path)
                if server.faults:
                    status = server.faults.pop(0)
                    self._send(status, {"error_code": "Busy", "message": "try later"},
                               {"Retry-After": "0"})
                    return
                url = urlparse(self.path)
                m = _PATH.match(url.path)
                if not m or m.group(1) not in server.datasets:
                    self._send(404, {"error_code": "NotFound", "message": "no such dataset"})
                    return
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                rows = server.select(server.datasets[m.group(1)], q.get("where", ""),
                                     q.get("order_by"))
                if rows is None:
                    self._send(400, {"error_code": "ODSQLError", "message": "bad where"})
                elif m.group(2) == "exports/json":
                    self._send(200, rows)
                else:
                    limit, offset = int(q.get("limit", 10)), int(q.get("offset", 0))
                    if limit > 100:
                        self._send(400, {"error_code": "InvalidRESTParameterError",
                                         "message": "limit > 100"})
                        return
                    self._send(200, {"total_count": len(rows),
                                     "results": rows[offset:offset + limit]})

            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @staticmethod
    def select(rows, where, order_by):
        m = _WHERE.match(where)
        if not m or m.group(1) != m.group(3) or order_by != m.group(1):
            return None
        field = m.group(1)
        lo, hi = (pd.Timestamp(m.group(2)), pd.Timestamp(m.group(4)))

        def when(row):
            t = pd.Timestamp(row[field])
            return t if t.tzinfo else t.tz_localize("UTC")  # a date: midnight UTC (ODS)

        out = [r for r in rows if lo <= when(r) < hi]
        return sorted(out, key=when)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)
