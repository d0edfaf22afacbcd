"""A real HTTP server on 127.0.0.1 for tests: scripted replies, every request recorded.

It runs ``http.server.ThreadingHTTPServer`` (HTTP/1.1, keep-alive) on a free port in a
background thread. A test scripts what each path answers and afterwards reads what arrived::

    with httpserver.serve() as server:
        server.route("/items", httpserver.Reply.with_json({"items": []}))
        server.queue("/flaky", httpserver.Reply(503), httpserver.Reply(200))  # once each, in order
        server.route("/echo", httpserver.echo)  # or any function Recorded -> Reply
        ...  # call server.url("/items?page=2")
        assert server.calls("/flaky") == 2
        assert server.requests[-1].headers["authorization"] == "Bearer t0k3n"

A request takes the next queued reply for its path (and method) if there is one, else the
path's route, else gets a 404 naming what was asked. A handler that raises answers 500 with
the traceback and adds it to ``server.errors``. ``Reply.delay`` stalls before answering
(timeouts); ``Reply.stream`` sends a chunked body piece by piece (size limits, slow bodies);
an iterator is used up by one request, so route a function that makes a fresh one each time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

ANY = "*"


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server received it. Header names are lower-cased."""

    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer: str = ""  # the client's "host:port": equal for requests on one kept-alive connection

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.text, keep_blank_values=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, headers, and a body given whole or as a stream of chunks."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    stream: Iterable[bytes] | None = None  # sent chunked, without Content-Length

    @classmethod
    def with_json(
        cls, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Reply:
        return cls(
            status, json.dumps(data), {"Content-Type": "application/json", **(headers or {})}
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status, headers={"Location": location})


Handler = Callable[[Recorded], Reply]


def echo(request: Recorded) -> Reply:
    """Answers with the request as JSON: method, path, query, headers and body text."""
    return Reply.with_json(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.text,
        }
    )


class Server:
    """The scripted server; use ``serve()`` to start and stop it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], Reply | Handler] = {}
        self._queues: dict[tuple[str, str], list[Reply | Handler]] = {}
        self._requests: list[Recorded] = []
        self.errors: list[str] = []
        self._httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.app = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="test-httpserver", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def route(self, path: str, reply: Reply | Handler, *, method: str = ANY) -> None:
        """Answer every request for ``path`` (and ``method``) with ``reply``."""
        with self._lock:
            self._routes[(method.upper(), path)] = reply

    def queue(self, path: str, *replies: Reply | Handler, method: str = ANY) -> None:
        """Answer the next requests for ``path`` with ``replies``, one each, before the route."""
        with self._lock:
            self._queues.setdefault((method.upper(), path), []).extend(replies)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def calls(self, path: str | None = None) -> int:
        """How many requests arrived, for ``path`` or in all."""
        return sum(1 for r in self.requests if path is None or r.path == path)

    def last(self, path: str | None = None) -> Recorded:
        return [r for r in self.requests if path is None or r.path == path][-1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self._requests.append(request)
            reply: Reply | Handler | None = None
            for key in ((request.method, request.path), (ANY, request.path)):
                if self._queues.get(key):
                    reply = self._queues[key].pop(0)
                    break
            else:
                reply = self._routes.get((request.method, request.path)) or self._routes.get(
                    (ANY, request.path)
                )
        if reply is None:
            return Reply(404, f"no route for {request.method} {request.path}")
        if isinstance(reply, Reply):
            return reply
        try:
            return reply(request)
        except Exception:
            text = traceback.format_exc()
            with self._lock:
                self.errors.append(text)
            return Reply(500, text)


@contextlib.contextmanager
def serve() -> Iterator[Server]:
    """A started ``Server``, stopped on exit."""
    server = Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _HTTPServer(http.server.ThreadingHTTPServer):
    app: Server
    daemon_threads = True
    # A handler stalled by Reply.delay must not hold up the test's teardown.
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away (a size limit, a timeout): that is its right
        super().handle_error(request, client_address)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def _handle(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=self._read_body(headers),
            peer="{}:{}".format(*self.client_address[:2]),
        )
        reply = self.server.app._answer(request)
        if reply.delay:
            time.sleep(reply.delay)
        self._write(reply)

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        return self.rfile.read(int(headers.get("content-length", "0") or 0))

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        with_body = self.command != "HEAD" and reply.status not in (204, 304)
        try:
            if reply.stream is not None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.stream if with_body else ():
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            else:
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                if "content-length" not in names:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client stopped reading (a size limit, a timeout): that is its right.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests, not stderr

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle
