"""A fake shop API on localhost for trying the examples without the internet.

    python examples/shop_server.py --port 8765

GET /orders, GET /orders/<id>, GET /customers, POST /notifications, PUT /crm/customers/<name>
(fails the first call per customer with 503, to show retries), POST /reports (404: the
endpoint does not exist, to show continueOnError). Every request is printed.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import unquote

ORDERS = [
    {"id": "A-1001", "customer": "Ada", "total": 42.5},
    {"id": "A-1002", "customer": "Grace", "total": 180},
    {"id": "A-1003", "customer": "Linus", "total": 1250},
    {"id": "A-1004", "customer": "Ada", "total": 99.99},
]
CUSTOMERS = [{"name": "Ada"}, {"name": "Grace"}, {"name": "Linus"}]


class Shop(BaseHTTPRequestHandler):
    seen_crm: ClassVar[set[str]] = set()
    lock = threading.Lock()

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_GET(self) -> None:
        if self.path == "/orders":
            return self._send(200, ORDERS)
        if self.path == "/customers":
            return self._send(200, CUSTOMERS)
        if self.path.startswith("/orders/"):
            order_id = unquote(self.path.removeprefix("/orders/"))
            for order in ORDERS:
                if order["id"] == order_id:
                    return self._send(200, order)
            return self._send(404, {"error": f"no order {order_id}"})
        return self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path == "/notifications":
            return self._send(201, {"accepted": True, "notification": self._body()})
        return self._send(404, {"error": "not found"})

    def do_PUT(self) -> None:
        if self.path.startswith("/crm/customers/"):
            name = unquote(self.path.removeprefix("/crm/customers/"))
            with self.lock:
                first = name not in self.seen_crm
                self.seen_crm.add(name)
            if first:
                return self._send(503, {"error": "CRM busy, try again"})
            return self._send(200, {"customer": name, "saved": self._body()})
        return self._send(404, {"error": "not found"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Shop)
    print(f"fake shop on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
