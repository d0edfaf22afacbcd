"""The web API over the workspace backend, through real HTTP on loopback (uvicorn + httpx):
what a person using the UI on their laptop relies on.

The app is mounted at /api under a root app, as ``autoflow serve`` mounts it."""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
import zoneinfo
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpserver
import httpx
import pytest
import webapi_server
import yaml
from saas import openai_api

from autoflow.webui import workspace
from autoflow.webui.api import auth, create_app

HELLO = """\
# A greeting, kept as written: comments and all.
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: hello
spec:
  description: Says hello
  inputs:
    who: {type: string, default: world}
  steps:
    - id: greet
      uses: core.set
      with:
        values: {text: "hello ${ inputs.who }"}
  outputs:
    text: ${ steps.greet.output.text }
"""

FLAKY = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: flaky
spec:
  inputs:
    url: {type: string, required: true}
  steps:
    - id: first
      uses: core.set
      with: {values: {n: 1}}
    - id: call
      uses: http.request
      retry: {maxAttempts: 1}
      with: {url: "${ inputs.url }"}
"""

SLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: slow
spec:
  steps:
    - id: a
      uses: core.set
      with: {values: {x: 1}}
    - id: wait
      uses: core.delay
      with: {duration: 30s}
"""


class Api:
    """An httpx client signed in the way the browser is: token link, cookie, CSRF header."""

    def __init__(self, client: httpx.AsyncClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
async def setup(
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[Api, str, workspace.WorkspaceBackend]]:
    be = await workspace.WorkspaceBackend.open(tmp_path, user="ann")
    token = auth.TokenAuth(user="ann")
    from autoflow.webui.api import Settings

    app = create_app(be, Settings(authenticator=token))
    async with webapi_server.serve(app) as base, httpx.AsyncClient(base_url=base + "/") as c:
        # The printed link: ?token= sets the cookie and redirects to the URL without it.
        first = await c.get("session", params={"token": token.token})
        assert first.status_code == 303
        assert "token" not in first.headers["location"]
        session = (await c.get("session")).json()
        yield Api(c, session["csrfToken"]), token.token, be
    await be.aclose()


async def wait_phase(api: Api, run_id: str, *phases: str) -> dict[str, Any]:
    for _ in range(400):
        r = await api.get(f"namespaces/default/runs/{run_id}")
        if r.status_code == 200 and r.json()["phase"] in phases:
            return dict(r.json())
        await asyncio.sleep(0.025)
    raise AssertionError(f"run {run_id} never reached {phases}: {r.text}")


async def test_session_needs_the_token(setup: tuple[Api, str, Any]) -> None:
    api, token, _ = setup
    base = str(api.client.base_url)
    async with httpx.AsyncClient(base_url=base) as stranger:
        r = await stranger.get("session")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert (await stranger.get("session", params={"token": "wrong"})).status_code == 401
        bearer = await stranger.get("session", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200
    session = (await api.get("session")).json()
    assert session["mode"] == "workspace" and session["namespaces"] == ["default"]
    assert session["user"] == "ann"


async def test_an_unknown_path_or_method_is_a_problem_not_a_crash(
    setup: tuple[Api, str, Any],
) -> None:
    """Starlette's routing errors get the same problem+json body as the API's own."""
    api, _, _ = setup
    unknown = await api.get("v9/namespaces/default/nothing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["status"] == 404
    wrong = await api.send("PATCH", "session")
    assert wrong.status_code == 405
    assert wrong.json()["title"] == "Method Not Allowed"
    assert "GET" in wrong.headers["allow"]


async def test_workflow_text_is_kept_as_saved_and_edits_conflict(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    api, _, be = setup
    r = await api.send("POST", "namespaces/default/workflows", json={"yaml": HELLO})
    assert r.status_code == 201, r.text
    etag = r.headers["etag"]
    assert (be.dir / "hello.yaml").read_text() == HELLO
    got = await api.get("namespaces/default/workflows/hello")
    assert got.json()["yaml"] == HELLO and got.headers["etag"] == etag
    again = await api.send("POST", "namespaces/default/workflows", json={"yaml": HELLO})
    assert again.status_code == 409

    edited = HELLO.replace("Says hello", "Says hello nicely")
    ok = await api.send(
        "PUT",
        "namespaces/default/workflows/hello",
        json={"yaml": edited},
        headers={"If-Match": etag},
    )
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    # A second editor still holding the first version is refused, nothing written.
    stale = await api.send(
        "PUT",
        "namespaces/default/workflows/hello",
        json={"yaml": HELLO},
        headers={"If-Match": etag},
    )
    assert stale.status_code == 409
    assert "changed since it was read" in stale.json()["detail"]
    assert (be.dir / "hello.yaml").read_text() == edited

    listed = (await api.get("namespaces/default/workflows")).json()["items"]
    assert [(w["name"], w["description"], w["lastRun"]) for w in listed] == [
        ("hello", "Says hello nicely", None)
    ]
    assert (await api.send("DELETE", "namespaces/default/workflows/hello")).status_code == 204
    assert (await api.get("namespaces/default/workflows/hello")).status_code == 404
    audit = (be.state / "audit.log").read_text().splitlines()
    assert [json.loads(line)["action"] for line in audit] == ["created", "changed", "deleted"]
    assert all(json.loads(line)["user"] == "ann" for line in audit)


async def test_an_invalid_text_is_refused_with_every_problem(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    api, _, be = setup
    bad = HELLO.replace("core.set", "core.nope").replace("${ steps.greet", "${ steps.greet. ")
    r = await api.send("POST", "namespaces/default/workflows", json={"yaml": bad})
    assert r.status_code == 422
    body = r.json()
    assert body["status"] == 422 and body["type"].endswith("/invalid")
    problems = body["problems"]
    assert len(problems) == 2, problems
    assert problems[0]["step"] == "greet" and "has no action 'nope'" in problems[0]["message"]
    assert problems[1]["field"] == "outputs.text"
    assert all(p["line"] for p in problems)
    assert problems[0]["path"] == "Workflow/hello, step 'greet', field 'uses'"
    assert not (be.dir / "hello.yaml").exists()
    syntax = await api.send("POST", "validate", json={"yaml": "a: [1\n"})
    assert (
        syntax.json()["valid"] is False and "YAML syntax" in syntax.json()["problems"][0]["message"]
    )


async def test_unsafe_methods_need_the_csrf_token(setup: tuple[Api, str, Any]) -> None:
    api, _, _ = setup
    r = await api.client.post("namespaces/default/workflows", json={"yaml": HELLO})
    assert r.status_code == 403 and r.json()["type"].endswith("/csrf")
    wrong = await api.client.post(
        "namespaces/default/workflows", json={"yaml": HELLO}, headers={"X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403


async def test_runs_start_list_and_show_steps_with_who_started_them(
    setup: tuple[Api, str, Any],
) -> None:
    api, _, _ = setup
    await api.send("POST", "namespaces/default/workflows", json={"yaml": HELLO})
    ids = []
    for who in ("a", "b", "c"):
        r = await api.send(
            "POST", "namespaces/default/workflows/hello/runs", json={"inputs": {"who": who}}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["runId"])
    for run_id in ids:
        await wait_phase(api, run_id, "Succeeded")
    detail = (await api.get(f"namespaces/default/runs/{ids[1]}")).json()
    assert detail["outputs"] == {"text": "hello b"} and detail["startedBy"] == "ann"
    assert [(s["step"], s["phase"]) for s in detail["steps"]] == [("greet", "Succeeded")]
    first = (await api.get("namespaces/default/runs", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next"]
    rest = (
        await api.get("namespaces/default/runs", params={"limit": 2, "cursor": first["next"]})
    ).json()
    assert {r["runId"] for r in first["items"] + rest["items"]} == set(ids)
    listed = (await api.get("namespaces/default/workflows")).json()["items"][0]
    assert listed["successRatio"] == 1.0 and listed["runs24h"] == 3
    assert listed["lastRun"]["phase"] == "Succeeded"
    stats = (await api.get("namespaces/default/stats", params={"window": "24h"})).json()
    assert stats["runs"] == 3 and stats["succeeded"] == 3
    bad = await api.send(
        "POST", "namespaces/default/workflows/hello/runs", json={"inputs": {"who": 5, "x": 1}}
    )
    assert bad.status_code == 422 and bad.json()["problems"]


async def test_retry_reuses_finished_steps_and_rerun_starts_over(
    setup: tuple[Api, str, Any],
) -> None:
    api, _, _ = setup
    await api.send("POST", "namespaces/default/workflows", json={"yaml": FLAKY})
    with httpserver.serve() as server:
        server.queue("/x", httpserver.Reply(400), httpserver.Reply.with_json({"ok": True}))
        r = await api.send(
            "POST",
            "namespaces/default/workflows/flaky/runs",
            json={"inputs": {"url": server.url("/x")}},
        )
        failed = await wait_phase(api, r.json()["runId"], "Failed")
        assert [s["phase"] for s in failed["steps"]] == ["Succeeded", "Failed"]
        retried = await api.send("POST", f"namespaces/default/runs/{failed['runId']}/retry")
        assert retried.status_code == 201
        done = await wait_phase(api, retried.json()["runId"], "Succeeded")
        assert done["trigger"] == "retry"
        steps = {s["step"]: s for s in done["steps"]}
        # The finished step was taken over, not run again: same times as in the failed run.
        assert steps["first"]["startedAt"] == failed["steps"][0]["startedAt"]
        assert server.calls("/x") == 2
        again = await api.send("POST", f"namespaces/default/runs/{done['runId']}/retry")
        assert again.status_code == 409
        server.route("/x", httpserver.Reply.with_json({"ok": True}))
        rerun = await api.send("POST", f"namespaces/default/runs/{failed['runId']}/rerun")
        fresh = await wait_phase(api, rerun.json()["runId"], "Succeeded")
        assert fresh["steps"][0]["startedAt"] != failed["steps"][0]["startedAt"]


SECRET_FLAKY = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: secret-flaky
spec:
  inputs:
    url: {type: string, required: true}
    token: {type: string, secret: true}
  steps:
    - id: first
      uses: core.set
      with: {values: {n: 1}}
    - id: call
      uses: http.request
      retry: {maxAttempts: 1}
      with:
        url: "${ inputs.url }"
        headers: {Authorization: "Bearer ${ inputs.token }"}
"""


async def test_a_retry_gets_the_secret_input_back_and_no_answer_shows_it(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    """The store keeps the secret sealed (the detail shows the marker); a retry runs with the
    value; a rerun, which would need it from the detail, says to start a new run instead."""
    api, _, be = setup
    token = "tk-9Zq-secret-input"
    await api.send("POST", "namespaces/default/workflows", json={"yaml": SECRET_FLAKY})
    with httpserver.serve() as server:
        server.queue("/x", httpserver.Reply(503), httpserver.Reply.with_json({"ok": True}))
        r = await api.send(
            "POST",
            "namespaces/default/workflows/secret-flaky/runs",
            json={"inputs": {"url": server.url("/x"), "token": token}},
        )
        failed = await wait_phase(api, r.json()["runId"], "Failed")
        assert failed["inputs"]["token"] == {"redacted": True}
        retried = await api.send("POST", f"namespaces/default/runs/{failed['runId']}/retry")
        assert retried.status_code == 201, retried.text
        done = await wait_phase(api, retried.json()["runId"], "Succeeded")
        assert server.last("/x").headers["authorization"] == f"Bearer {token}"
        rerun = await api.send("POST", f"namespaces/default/runs/{failed['runId']}/rerun")
        assert rerun.status_code == 422 and "token" in rerun.json()["detail"]
        for answer in (failed, done, retried.json(), rerun.json()):
            assert token not in json.dumps(answer)
    for stored in be.state.glob("runs.db*"):  # the database and its WAL
        assert token.encode() not in stored.read_bytes(), stored


async def read_events(
    client: httpx.AsyncClient, path: str, count: int, last_id: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    found: list[tuple[str, dict[str, Any]]] = []
    async with client.stream("GET", path, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                found.append((event_id, json.loads(line[6:])))
                if len(found) == count:
                    break
    return found


async def test_sse_delivers_every_transition_in_order_and_resumes(
    setup: tuple[Api, str, Any],
) -> None:
    api, _, _ = setup
    await api.send("POST", "namespaces/default/workflows", json={"yaml": SLOW})
    # The namespace stream from its first event (Last-Event-ID 0), however late it connects.
    listener = asyncio.ensure_future(read_events(api.client, "namespaces/default/events", 5, "0"))
    r = await api.send("POST", "namespaces/default/workflows/slow/runs", json={})
    run_id = r.json()["runId"]
    seen = await asyncio.wait_for(listener, 10)
    assert [(e["kind"], e.get("step"), e["phase"]) for _, e in seen] == [
        ("run", None, "Pending"),
        ("run", None, "Running"),
        ("step", "a", "Running"),
        ("step", "a", "Succeeded"),
        ("step", "wait", "Running"),
    ]
    assert all(e["runId"] == run_id for _, e in seen)
    # The connection dropped after step a started: resuming from it loses nothing.
    resumed = asyncio.ensure_future(
        read_events(api.client, f"namespaces/default/runs/{run_id}/events", 3, seen[2][0])
    )
    await asyncio.sleep(0.3)
    assert (await api.send("POST", f"namespaces/default/runs/{run_id}/cancel")).status_code == 202
    tail = await asyncio.wait_for(resumed, 10)
    assert [(e["kind"], e.get("step"), e["phase"]) for _, e in tail] == [
        ("step", "a", "Succeeded"),
        ("step", "wait", "Running"),
        ("end", None, "Cancelled"),
    ]
    ids = [int(i) for i, _ in seen + tail]
    assert ids[3:5] == ids[5:7]
    await wait_phase(api, run_id, "Cancelled")


async def test_integration_secrets_are_write_only(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    api, _, be = setup
    secret = "s3cr3t-value-never-shown"
    body = {
        "name": "shop",
        "spec": {"type": "http", "settings": {"baseUrl": "http://127.0.0.1:9", "auth": "bearer"}},
        "secrets": {"token": secret},
    }
    created = await api.send("POST", "namespaces/default/integrations", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["secretKeys"] == ["token"]
    tested = await api.send("POST", "namespaces/default/integrations/shop/test")
    assert tested.status_code == 200
    listed = await api.get("namespaces/default/integrations")
    assert listed.json()["items"][0]["health"]["reason"] == tested.json()["reason"]
    for response in (created, tested, listed):
        assert secret not in response.text
    assert (be.state / "secrets.yaml").stat().st_mode & 0o077 == 0
    assert secret not in (be.dir / "shop.integration.yaml").read_text()


async def test_connector_catalogue_has_schemas(setup: tuple[Api, str, Any]) -> None:
    api, _, _ = setup
    catalogue = (await api.get("connectors")).json()
    http = next(c for c in catalogue if c["type"] == "http")
    request = next(a for a in http["actions"] if a["name"] == "request")
    assert "url" in request["inputSchema"]["properties"]
    assert "token" in http["integration"]["secretKeys"] or http["integration"]["secretKeys"]
    # the form's OAuth2 fields: always for a connector whose scheme is oauth2, for http when
    # its settings' auth is oauth2
    auth = {c["type"]: c["integration"]["auth"] for c in catalogue}
    assert auth["salesforce"] == "oauth2" and auth["github"] == "bearer"
    assert auth["http"] is None
    assert "oauth2" in http["integration"]["settingsSchema"]["properties"]["auth"]["enum"]


async def test_the_template_gallery_lists_every_template_as_its_file(
    setup: tuple[Api, str, Any],
) -> None:
    api, _, _ = setup
    items = (await api.get("templates")).json()["items"]
    files = sorted((pathlib.Path(__file__).parents[1] / "examples" / "templates").glob("*.yaml"))
    assert sorted(t["name"] for t in items) == [p.stem for p in files]
    invoice = next(t for t in items if t["name"] == "invoice-reminder")
    assert invoice["title"] == "Invoice reminder" and invoice["category"] == "finance"
    assert invoice["integrations"] == ["postgres", "email"]
    assert invoice["workflow"] == "invoice-reminder" and len(invoice["description"]) >= 40
    assert invoice["yaml"] == (files[0].parent / "invoice-reminder.yaml").read_text()
    assert [t["title"].lower() for t in items] == sorted(t["title"].lower() for t in items)


async def test_under_autoflow_serves_launcher(tmp_path: pathlib.Path) -> None:
    """``autoflow serve`` mounts the API over its own in-process launcher and event hub
    (runners.pool): runs start, stream their transitions and cancel through it."""
    from autoflow.runners import store as store_mod
    from autoflow.runners.pool import inprocess
    from autoflow.runners.pool import workspace as pool_workspace
    from autoflow.webui.api import Settings

    (tmp_path / "slow.yaml").write_text(SLOW)
    ws = pool_workspace.Workspace(str(tmp_path))
    ws.refresh()
    st = await store_mod.open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    launcher = inprocess.InProcessLauncher(st, ws.workflow, ws.provider)
    await launcher.start()
    be = workspace.WorkspaceBackend(tmp_path, st, launcher=launcher, events=launcher.hub)
    token = auth.TokenAuth()
    app = create_app(be, Settings(authenticator=token))
    headers = {"Authorization": f"Bearer {token.token}"}
    try:
        async with (
            webapi_server.serve(app) as base,
            httpx.AsyncClient(base_url=base + "/", headers=headers) as c,
        ):
            api = Api(c, "")
            listener = asyncio.ensure_future(
                read_events(c, "namespaces/default/events", 5, str(launcher.hub.last_id))
            )
            r = await api.send("POST", "namespaces/default/workflows/slow/runs", json={})
            assert r.status_code == 201, r.text
            run_id = r.json()["runId"]
            seen = await asyncio.wait_for(listener, 15)
            kinds = [(e["kind"], e.get("step"), e["phase"]) for _, e in seen]
            assert ("step", "a", "Succeeded") in kinds and kinds[-1] == ("step", "wait", "Running")
            await wait_phase(api, run_id, "Running")
            for _ in range(100):  # the engine run exists once the task has started
                cancel = await api.send("POST", f"namespaces/default/runs/{run_id}/cancel")
                if cancel.status_code == 202:
                    break
                await asyncio.sleep(0.05)
            assert cancel.status_code == 202, cancel.text
            await wait_phase(api, run_id, "Cancelled")
    finally:
        await launcher.aclose()
        await st.aclose()


async def test_oauth2_connect_stores_the_tokens_and_never_shows_them(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    """The connect flow against a local OAuth2 server (tests/oauth_server.py: RFC 6749
    4.1 with RFC 7636 PKCE): start, the provider's redirect back, tokens into the secrets."""
    import oauth_server

    api, _, be = setup
    with httpserver.serve() as server:
        provider = oauth_server.AuthServer(server)
        body = {
            "name": "crm",
            "spec": {
                "type": "http",
                "settings": {"baseUrl": server.url("/api"), "auth": "oauth2"},
                "oauth2": {
                    "grantType": "authorization_code",
                    "tokenUrl": provider.token_url,
                    "authorizeUrl": provider.authorize_url,
                    "clientId": oauth_server.CLIENT_ID,
                    "scopes": ["api"],
                },
            },
            "secrets": {"clientSecret": oauth_server.CLIENT_SECRET},
        }
        made = await api.send("POST", "namespaces/default/integrations", json=body)
        assert made.status_code == 201, made.text
        start = await api.get("namespaces/default/integrations/crm/oauth/start")
        assert start.status_code == 200, start.text
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorizationUrl"])
        assert consent.status_code == 302
        back = consent.headers["location"]
        done = await api.get(back)
        # back to the web UI (served at the parent of the API's mount), which shows it
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/#/integrations?connected=crm"
        assert provider.grants == ["authorization_code"]
        replay = await api.get(back)
        assert replay.status_code == 422
        stored = yaml.safe_load((be.state / "secrets.yaml").read_text())["crm"]
        assert stored["accessToken"].startswith("at-") and stored["refreshToken"]
        listed = await api.get("namespaces/default/integrations")
        keys = listed.json()["items"][0]["secretKeys"]
        assert {"accessToken", "refreshToken", "clientSecret"} <= set(keys)
        for response in (made, start, done, listed):
            for value in (
                stored["accessToken"],
                stored["refreshToken"],
                oauth_server.CLIENT_SECRET,
            ):
                assert value not in response.text


async def test_a_file_edited_by_hand_into_an_invalid_workflow_is_shown_not_ready(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    api, _, be = setup
    (be.dir / "hello.yaml").write_text(HELLO.replace("core.set", "core.nope"))
    (item,) = (await api.get("namespaces/default/workflows")).json()["items"]
    assert item["ready"]["status"] == "False" and item["ready"]["reason"] == "Invalid"
    assert "step 'greet'" in item["ready"]["message"]
    (be.dir / "hello.yaml").write_text(HELLO)
    (item,) = (await api.get("namespaces/default/workflows")).json()["items"]
    assert item["ready"]["status"] == "True"


async def test_the_assistant_and_the_importer_need_sign_in_and_see_the_workspace(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
    saas: Callable[[type[Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The assistant spends the provider's tokens and the importer parses uploads: both are
    the signed-in person's only. The assistant is told the workspace's Integrations (names
    and types). The model is tests/saas/openai_api.py (OpenAI Chat Completions)."""
    api, _, be = setup
    service = saas(openai_api.OpenAI)
    monkeypatch.setenv("AUTOFLOW_AI_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", openai_api.API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", service.base_url)
    (be.dir / "chat.yaml").write_text(
        "apiVersion: autoflow.dev/v1alpha1\nkind: Integration\nmetadata: {name: chat}\n"
        "spec: {type: slack}\n"
    )
    export = (pathlib.Path(__file__).parent / "n8n_corpus" / "github-jira.json").read_text()
    async with httpx.AsyncClient(base_url=str(api.client.base_url)) as stranger:
        for path, body in [
            ("assistant/draft", {"prompt": "post to slack", "namespace": "default"}),
            ("assistant/explain", {"yaml": HELLO}),
            ("import/n8n", {"json": export}),
        ]:
            assert (await stranger.post(path, json=body)).status_code == 401, path
    assert service.script.bodies == []

    service.answer("It greets someone.")
    r = await api.send("POST", "assistant/explain", json={"yaml": HELLO})
    assert r.status_code == 200 and r.json()["text"] == "It greets someone."
    service.answer(*["not a workflow"] * 4)
    r = await api.send(
        "POST", "assistant/draft", json={"prompt": "post to slack", "namespace": "default"}
    )
    assert r.status_code == 200 and r.json()["valid"] is False
    assert "chat (type slack)" in json.dumps(service.script.bodies[1])
    imported = await api.send("POST", "import/n8n", json={"json": export})
    assert imported.status_code == 200, imported.text
    assert "kind: Workflow" in imported.json()["yaml"]


NIGHTLY = """\
# Orders are synced at half past two, Berlin time.
apiVersion: autoflow.dev/v1alpha1
kind: Schedule
metadata:
  name: nightly
spec:
  cron: "30 2 * * *"   # wall clock: 03:00 on the spring-forward night
  timezone: Europe/Berlin
  workflowRef: {name: sync}
"""


async def test_a_schedule_is_suspended_and_resumed_in_its_file_and_nothing_else_moves(
    setup: tuple[Api, str, workspace.WorkspaceBackend],
) -> None:
    api, _, be = setup
    path = be.dir / "nightly.yaml"
    path.write_text(NIGHTLY)
    (listed,) = (await api.get("namespaces/default/schedules")).json()["items"]
    fires = [datetime.datetime.fromisoformat(t) for t in listed["nextFires"]]
    assert len(fires) == 3 and fires == sorted(fires)
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    assert {(f.astimezone(berlin).hour, f.astimezone(berlin).minute) for f in fires} <= {
        (2, 30),
        (3, 0),
    }

    suspended = await api.send("POST", "namespaces/default/schedules/nightly/suspend")
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["spec"]["suspend"], suspended.json()["nextFires"]) == (True, [])
    assert path.read_text() == NIGHTLY.replace(
        '  cron: "30', '  suspend: true\n  cron: "30'
    )  # one line added, comments and quoting kept
    again = await api.send("POST", "namespaces/default/schedules/nightly/suspend")
    assert again.status_code == 200 and path.read_text().count("suspend") == 1

    resumed = await api.send("POST", "namespaces/default/schedules/nightly/resume")
    assert resumed.json()["spec"]["suspend"] is False
    assert resumed.json()["nextFires"] == listed["nextFires"]
    assert path.read_text() == NIGHTLY.replace('  cron: "30', '  suspend: false\n  cron: "30')
    audit = [json.loads(line) for line in (be.state / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["schedule"], a["user"]) for a in audit] == [
        ("suspended", "nightly", "ann"),
        ("resumed", "nightly", "ann"),
    ]  # the repeated suspend changed nothing and is not recorded

    missing = await api.send("POST", "namespaces/default/schedules/nope/suspend")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # CSRF as for every unsafe method.
    refused = await api.client.post("namespaces/default/schedules/nightly/suspend")
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("spec:\n  cron: x\n", "spec:\n  suspend: true\n  cron: x\n"),
        ("spec:\n    suspend: false # off\n", "spec:\n    suspend: true # off\n"),
        ("spec: {cron: x}\n", "spec: {suspend: true, cron: x}\n"),
        ("spec: {}\n", "spec: {suspend: true}\n"),
        ("a: 1\n---\nspec:\n  x: 1\n", "a: 1\n---\nspec:\n  suspend: true\n  x: 1\n"),
    ],
)
def test_set_spec_field_changes_one_value_and_keeps_every_other_byte(
    before: str, after: str
) -> None:
    from autoflow.runners.definitions import documents

    doc = documents.parse(before)[-1]
    assert workspace.set_spec_field(before, doc.node, "suspend", "true") == after
