"""The web UI's built front end, served beside the web API.

``webui/frontend`` (React + TypeScript + Vite) builds into ``webui/dist``, which the Python
package ships as package data (``autoflow/webui/dist``), so ``pip install`` users get the UI
without npm. ``mount(app)`` adds it at ``/`` of a Starlette (or FastAPI) app, after the app's
own routes (``/api``, ``/hooks``): files by path, and ``index.html`` for any other GET that is
not under ``/api`` or ``/hooks`` (the UI routes in the browser). Without a build, ``/`` says
how to make one instead of answering 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette import responses, routing, staticfiles
from starlette.types import Receive, Scope, Send

DIST = Path(__file__).resolve().parent / "dist"
# Paths that belong to the server, never to the single-page app's fallback.
RESERVED = ("/api", "/hooks", "/healthz", "/metrics")

NOT_BUILT = """<!doctype html><title>Autoflow</title>
<h1>The web UI is not built</h1>
<p>This Autoflow was installed without the built front end. Build it with
<code>bash hack/setup.sh</code> (needs npm), or
<code>cd webui/frontend && npm ci && npm run build</code>.
The web API is at <a href="api/session">/api</a>.</p>
"""


def built(dist: Path = DIST) -> bool:
    """Whether the front end was built (``index.html`` is there)."""
    return (dist / "index.html").is_file()


class SinglePageApp:
    """Static files from ``dist``; ``index.html`` for unknown paths outside ``RESERVED``."""

    def __init__(self, dist: Path = DIST) -> None:
        self.dist = dist
        self.files = staticfiles.StaticFiles(directory=dist, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "/")
        if not built(self.dist):
            status = 404 if path.startswith(RESERVED) else 503
            await responses.HTMLResponse(NOT_BUILT, status_code=status)(scope, receive, send)
            return
        if path.startswith(RESERVED) or scope["method"] not in ("GET", "HEAD"):
            await responses.PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        full, _ = self.files.lookup_path(path.lstrip("/"))
        if full or path == "/":
            await self.files(scope, receive, send)
            return
        index = self.dist / "index.html"
        no_cache = {"Cache-Control": "no-cache"}
        await responses.FileResponse(index, headers=no_cache)(scope, receive, send)


def mount(app: Any, dist: Path = DIST) -> None:
    """Serves the UI at ``/`` of ``app`` (a Starlette or FastAPI app), after its other routes."""
    app.router.routes.append(routing.Mount("/", app=SinglePageApp(dist), name="webui"))
