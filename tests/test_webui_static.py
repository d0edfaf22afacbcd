"""webui/static.py: the built front end at / beside the API, index.html for the UI's own
paths, never for /api or /hooks, and a page saying how to build it when it is not built."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette import applications, responses, routing

from autoflow.webui import static


def _app(dist: Path) -> applications.Starlette:
    async def api(request: object) -> responses.JSONResponse:
        return responses.JSONResponse({"api": True})

    app = applications.Starlette(routes=[routing.Route("/api/session", api)])
    static.mount(app, dist)
    return app


def _client(app: applications.Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


async def test_serves_files_and_falls_back_to_index_for_ui_paths(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<div id=root></div>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    client = _client(_app(tmp_path))
    assert (await client.get("/api/session")).json() == {"api": True}
    assert (await client.get("/")).text == "<div id=root></div>"
    assert (await client.get("/assets/app.js")).text == "console.log(1)"
    deep = await client.get("/workflows/default/hello")
    assert deep.status_code == 200
    assert deep.text == "<div id=root></div>"
    assert deep.headers["cache-control"] == "no-cache"
    for path in ("/api/nope", "/hooks/default/x"):
        assert (await client.get(path)).status_code == 404
    assert (await client.post("/anything")).status_code == 404


async def test_without_a_build_says_how_to_make_one(tmp_path: Path) -> None:
    client = _client(_app(tmp_path / "missing"))
    r = await client.get("/")
    assert r.status_code == 503
    assert "hack/setup.sh" in r.text
    assert (await client.get("/api/session")).status_code == 200
