"""The web API's cluster backend against the real API server: every call is made as the
signed-in person (impersonation), so Kubernetes RBAC decides.

Two people sign in through the local OIDC provider (tests/oidc_server.py): Ann may edit
namespace A (a RoleBinding of autoflow-editor to her user), Bob may only read namespace B
(autoflow-viewer bound to his group ``team-b``: Impersonate-Group carries it). The web API
itself runs as a ServiceAccount that may only impersonate (config/rbac/webui.yaml). Each
sees and does exactly what RBAC allows and gets 403 otherwise; no secret value appears in
any response of the session. Run history and the dashboard's figures come from a real run
store (SQLite); a retry from the failed step runs through the operator and the test Job
executor (executor.py) against a loopback HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import apiserver as apiserver_mod
import executor as executor_mod
import httpserver
import httpx
import objects
import oidc_server
import operator_process
import pytest
import webapi_server
import yaml
from objects import phase, step
from webapi_signin import csrf, settings, sign_in

from autoflow.operator import archive
from autoflow.runners import kube as kube_client
from autoflow.runners import store
from autoflow.webui import cluster
from autoflow.webui.api import Settings, create_app, oidc

WEBUI = "nobody"  # the identity the webui runs as (two_namespaces: conftest.py)
SECRET_VALUE = "tok-7Yh3Kd9Wq2Lp5Xn8"

FLOW = """\
# Ann's flow
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata:
  name: orders
spec:
  steps:
    - id: hello
      uses: core.log
      with: {message: hi}
"""


class Person:
    def __init__(self, client: httpx.AsyncClient, token: str, seen: list[str]) -> None:
        self.client, self.token, self.seen = client, token, seen

    async def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.token} if method != "GET" else {}
        headers.update(kw.pop("headers", {}))
        r = await self.client.request(method, path, headers=headers, **kw)
        self.seen.append(r.text)
        return r


@contextlib.asynccontextmanager
async def signed_in(
    apiserver: apiserver_mod.APIServer,
    namespaces: tuple[str, str],
    provider: oidc_server.OidcProvider,
    store_url: str,
) -> AsyncIterator[tuple[Person, Person, list[str]]]:
    """The web API (cluster backend, run store at ``store_url``) with Ann and Bob signed in."""
    a, b = namespaces
    identity = apiserver.identities[WEBUI]
    client = kube_client.Client(
        apiserver.url,
        token=identity.token,
        verify=ssl.create_default_context(cafile=str(apiserver.ca_file)),
    )
    runs = await store.open_store(store_url)
    backend = cluster.ClusterBackend(client, runs, namespaces=[a, b])
    auth = oidc.OidcAuth(settings(provider))
    app = create_app(backend, Settings(authenticator=auth))
    seen: list[str] = []
    async with (
        webapi_server.serve(app) as base,
        httpx.AsyncClient(base_url=base + "/", timeout=30) as ann_http,
        httpx.AsyncClient(base_url=base + "/", timeout=30) as bob_http,
    ):
        await sign_in(ann_http, provider, "ann@example.com", ["team-a"])
        await sign_in(bob_http, provider, "bob@example.com", ["team-b"])
        ann = Person(ann_http, await csrf(ann_http), seen)
        bob = Person(bob_http, await csrf(bob_http), seen)
        yield ann, bob, seen
    await backend.aclose()
    await client.aclose()


@pytest.fixture
async def people(
    apiserver: apiserver_mod.APIServer,
    two_namespaces: tuple[str, str],
    provider: oidc_server.OidcProvider,
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[Person, Person, list[str]]]:
    url = f"sqlite:///{tmp_path / 'webui-runs.db'}"
    async with signed_in(apiserver, two_namespaces, provider, url) as found:
        yield found


async def test_each_person_sees_and_does_what_rbac_allows(
    apiserver: apiserver_mod.APIServer,
    two_namespaces: tuple[str, str],
    people: tuple[Person, Person, list[str]],
) -> None:
    a, b = two_namespaces
    ann, bob, seen = people
    # The web API's own identity can do nothing but impersonate.
    with pytest.raises(apiserver_mod.APIError) as refused:
        apiserver.request(
            "GET", f"/apis/autoflow.dev/v1alpha1/namespaces/{a}/workflows", user=WEBUI
        )
    assert refused.value.code == 403

    assert (await ann("GET", "session")).json()["namespaces"] == [a]
    assert (await bob("GET", "session")).json()["namespaces"] == [b]

    # Workflows: Ann writes in A, exactly the text she sent; Bob may not even read A.
    made = await ann("POST", f"namespaces/{a}/workflows", json={"yaml": FLOW})
    assert made.status_code == 201, made.text
    got = await ann("GET", f"namespaces/{a}/workflows/orders")
    assert got.json()["yaml"] == FLOW and got.json()["changedBy"] == "ann@example.com"
    stored = apiserver.request(
        "GET", f"/apis/autoflow.dev/v1alpha1/namespaces/{a}/workflows/orders"
    )
    assert stored["metadata"]["annotations"]["autoflow.dev/changed-by"] == "ann@example.com"
    assert (await bob("GET", f"namespaces/{a}/workflows")).status_code == 403
    assert (await bob("GET", f"namespaces/{a}/workflows/orders")).status_code == 403
    stale = await ann(
        "PUT",
        f"namespaces/{a}/workflows/orders",
        json={"yaml": FLOW.replace("hi", "ho")},
        headers={"If-Match": '"1"'},
    )
    assert stale.status_code == 409
    ok = await ann(
        "PUT",
        f"namespaces/{a}/workflows/orders",
        json={"yaml": FLOW.replace("hi", "ho")},
        headers={"If-Match": got.headers["etag"]},
    )
    assert ok.status_code == 200, ok.text

    # Namespace B: Bob (through his group) reads, and is refused every write.
    apiserver.apply({**yaml.safe_load(FLOW), "metadata": {"name": "orders", "namespace": b}})
    listed = await bob("GET", f"namespaces/{b}/workflows")
    assert [w["name"] for w in listed.json()["items"]] == ["orders"]
    refused_write = await bob("POST", f"namespaces/{b}/workflows", json={"yaml": FLOW})
    assert refused_write.status_code == 403
    assert "bob@example.com" in refused_write.json()["detail"]
    assert (await bob("DELETE", f"namespaces/{b}/workflows/orders")).status_code == 403
    assert (await bob("POST", f"namespaces/{b}/workflows/orders/runs", json={})).status_code == 403
    assert (await ann("GET", f"namespaces/{b}/workflows")).status_code == 403

    # Runs: Ann starts one in A as herself; run history follows the same rules.
    started = await ann("POST", f"namespaces/{a}/workflows/orders/runs", json={"inputs": {}})
    assert started.status_code == 201, started.text
    run_id = started.json()["runId"]
    run = apiserver.request(
        "GET", f"/apis/autoflow.dev/v1alpha1/namespaces/{a}/workflowruns/{run_id}"
    )
    assert run["metadata"]["annotations"]["autoflow.dev/started-by"] == "ann@example.com"
    page = await ann("GET", f"namespaces/{a}/runs")
    assert [r["runId"] for r in page.json()["items"]] == [run_id]
    assert page.json()["items"][0]["startedBy"] == "ann@example.com"
    assert (await ann("GET", f"namespaces/{a}/runs/{run_id}")).status_code == 200
    assert (await bob("GET", f"namespaces/{a}/runs")).status_code == 403
    assert (await bob("GET", f"namespaces/{a}/runs/{run_id}")).status_code == 403
    assert (await bob("GET", f"namespaces/{b}/runs")).status_code == 200
    assert (await bob("GET", f"namespaces/{a}/stats")).status_code == 403
    cancel = await ann("POST", f"namespaces/{a}/runs/{run_id}/cancel")
    assert cancel.status_code == 202

    # Integrations: the secret value goes into a Secret and never comes back.
    body = {
        "name": "shop",
        "spec": {"type": "http", "settings": {"baseUrl": "http://127.0.0.1:9", "auth": "bearer"}},
        "secrets": {"token": SECRET_VALUE},
    }
    made_i = await ann("POST", f"namespaces/{a}/integrations", json=body)
    assert made_i.status_code == 201, made_i.text
    assert made_i.json()["secretKeys"] == ["token"]
    assert (await ann("POST", f"namespaces/{a}/integrations/shop/test")).status_code == 200
    assert (await ann("GET", f"namespaces/{a}/integrations")).status_code == 200
    assert (await bob("GET", f"namespaces/{a}/integrations")).status_code == 403
    assert (await bob("POST", f"namespaces/{b}/integrations", json=body)).status_code == 403
    assert (await bob("GET", f"namespaces/{b}/integrations")).status_code == 200
    assert (await bob("GET", f"namespaces/{b}/schedules")).status_code == 200

    # Schedules: suspend and resume as the person (a merge patch of spec.suspend).
    nightly = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Schedule",
        "spec": {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "workflowRef": {"name": "x"}},
    }
    for ns in (a, b):
        apiserver.apply({**nightly, "metadata": {"name": "nightly", "namespace": ns}})
    (listed,) = (await ann("GET", f"namespaces/{a}/schedules")).json()["items"]
    assert len(listed["nextFires"]) == 3
    suspended = await ann("POST", f"namespaces/{a}/schedules/nightly/suspend")
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["spec"]["suspend"], suspended.json()["nextFires"]) == (True, [])
    cr = apiserver.request("GET", f"/apis/autoflow.dev/v1alpha1/namespaces/{a}/schedules/nightly")
    assert cr["spec"]["suspend"] is True and cr["spec"]["cron"] == "30 2 * * *"
    assert cr["metadata"]["annotations"]["autoflow.dev/changed-by"] == "ann@example.com"
    resumed = await ann("POST", f"namespaces/{a}/schedules/nightly/resume")
    assert resumed.json()["spec"]["suspend"] is False and len(resumed.json()["nextFires"]) == 3
    # A viewer may see a Schedule but not suspend it; nobody may in a namespace not theirs.
    assert (await bob("POST", f"namespaces/{b}/schedules/nightly/suspend")).status_code == 403
    assert (await bob("POST", f"namespaces/{a}/schedules/nightly/suspend")).status_code == 403
    assert (await ann("POST", f"namespaces/{a}/schedules/gone/suspend")).status_code == 404
    cr = apiserver.request("GET", f"/apis/autoflow.dev/v1alpha1/namespaces/{b}/schedules/nightly")
    assert not cr["spec"].get("suspend")

    assert (await ann("DELETE", f"namespaces/{a}/workflows/orders")).status_code == 204
    # Not one response of the whole session held the secret value or a provider token.
    for text in seen:
        assert SECRET_VALUE not in text
        assert "eyJ" not in text


async def test_live_status_follows_the_workflowrun_and_resumes(
    apiserver: apiserver_mod.APIServer,
    two_namespaces: tuple[str, str],
    people: tuple[Person, Person, list[str]],
) -> None:
    a, _ = two_namespaces
    ann, bob, _ = people
    apiserver.apply({**yaml.safe_load(FLOW), "metadata": {"name": "orders", "namespace": a}})
    started = await ann("POST", f"namespaces/{a}/workflows/orders/runs", json={})
    run_id = started.json()["runId"]
    obj = {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": run_id, "namespace": a},
    }

    async def read(count: int, last: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        headers = {"Last-Event-ID": last} if last else {}
        found: list[tuple[str, dict[str, Any]]] = []
        async with ann.client.stream(
            "GET", f"namespaces/{a}/runs/{run_id}/events", headers=headers
        ) as response:
            assert response.status_code == 200
            event_id = ""
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    found.append((event_id, json.loads(line[6:])))
                    if len(found) == count:
                        return found
        return found

    def status(phase: str, steps: list[dict[str, Any]]) -> None:
        apiserver.merge_patch(
            obj, {"status": {"phase": phase, "steps": steps}}, subresource="status"
        )

    listener = asyncio.ensure_future(read(3))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(status, "Running", [{"id": "hello", "phase": "Running"}])
    await asyncio.to_thread(status, "Running", [{"id": "hello", "phase": "Succeeded"}])
    first = await asyncio.wait_for(listener, 20)
    assert [(e["kind"], e.get("step"), e["phase"]) for _, e in first] == [
        ("run", None, "Running"),
        ("step", "hello", "Running"),
        ("step", "hello", "Succeeded"),
    ]
    # Reconnect after the first event: the rest comes again, then what happened meanwhile.
    resumed = asyncio.ensure_future(read(3, first[0][0]))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(status, "Succeeded", [{"id": "hello", "phase": "Succeeded"}])
    tail = await asyncio.wait_for(resumed, 20)
    assert [(e["kind"], e.get("step"), e["phase"]) for _, e in tail] == [
        ("step", "hello", "Running"),
        ("step", "hello", "Succeeded"),
        ("end", None, "Succeeded"),
    ]
    assert [i for i, _ in tail[:2]] == [i for i, _ in first[1:]]
    stream = await bob.client.get(f"namespaces/{a}/runs/{run_id}/events")
    assert stream.status_code == 403


RETRIED_FLOW: dict[str, Any] = {
    "inputs": {"orderId": {"type": "string", "required": True}},
    "steps": [
        {"id": "reserve", "uses": "http.request", "with": {"url": "SHOP/reserve", "method": "POST",
                                                          "json": {"id": "${ inputs.orderId }"}}},
        {"id": "charge", "uses": "http.request", "retry": {"maxAttempts": 1},
         "with": {"url": "SHOP/charge", "method": "POST"}},
        {"id": "ship", "uses": "http.request", "with": {"url": "SHOP/ship", "method": "POST",
                                                       "json": "${ steps.reserve.output.body }"}},
    ],
    "outputs": {"shipped": "${ steps.ship.output.body.ok }"},
}  # fmt: skip


async def test_a_failed_run_is_retried_from_its_failed_step_in_the_cluster(
    apiserver: apiserver_mod.APIServer,
    two_namespaces: tuple[str, str],
    provider: oidc_server.OidcProvider,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    store_url: str,
) -> None:
    """Job mode with the run store: a run fails at step 2 of 3 (the shop answers 500), the
    shop is fixed, Ann retries through the API: a new WorkflowRun created as her, naming the
    failed run in ``spec.retryOf``; its runner takes step 1 from the store (the shop never
    sees it again) and runs steps 2 and 3. A retry the Workflow no longer matches is a 409;
    a WorkflowRun whose retryOf the runner cannot honour fails saying why, running nothing."""
    a, _ = two_namespaces
    objects.store_secret(apiserver, a, store_url)

    def wait(obj: dict[str, Any], check: Any) -> Any:
        return asyncio.to_thread(objects.wait_for, apiserver, obj, check, 60)

    def archived(r: dict[str, Any]) -> bool:
        return archive.ANNOTATION_ARCHIVED in (r["metadata"].get("annotations") or {})

    with httpserver.serve() as shop:
        shop.route("/reserve", httpserver.Reply.with_json({"reserved": "A-1"}))
        shop.route("/charge", httpserver.Reply(500, '{"error": "down"}', {}))
        shop.route("/ship", httpserver.Reply.with_json({"ok": True}))
        spec = json.loads(json.dumps(RETRIED_FLOW).replace("SHOP", shop.url("").rstrip("/")))
        apiserver.create(objects.workflow(**spec), namespace=a)
        async with signed_in(apiserver, two_namespaces, provider, store_url) as (ann, bob, _):
            started = await ann(
                "POST", f"namespaces/{a}/workflows/orders/runs", json={"inputs": {"orderId": "A-1"}}
            )
            assert started.status_code == 201, started.text
            first_id = started.json()["runId"]
            first = objects.placed(objects.run(first_id), a)
            failed = await wait(first, lambda r: objects.finished(r) and archived(r))
            assert phase(failed) == "Failed", failed["status"]
            assert [step(failed, s).get("phase") for s in ("reserve", "charge", "ship")] == [
                "Succeeded",
                "Failed",
                None,  # never started
            ]
            assert (shop.calls("/reserve"), shop.calls("/charge"), shop.calls("/ship")) == (1, 1, 0)
            uid = failed["metadata"]["uid"]
            # Archived into the store, its CR still there: listed once, not twice.
            listed = (await ann("GET", f"namespaces/{a}/runs")).json()["items"]
            assert [r["runId"] for r in listed] == [uid], listed

            # Bob may only read namespace B: no retry in A.
            refused = await bob("POST", f"namespaces/{a}/runs/{first_id}/retry")
            assert refused.status_code == 403

            shop.route("/charge", httpserver.Reply.with_json({"charged": True}))
            retried = await ann("POST", f"namespaces/{a}/runs/{first_id}/retry")
            assert retried.status_code == 201, retried.text
            second_id = retried.json()["runId"]
            assert second_id != first_id
            second = objects.placed(objects.run(second_id), a)
            made = apiserver.get(second)
            assert made["spec"]["retryOf"] == uid
            assert made["spec"]["inputs"] == {"orderId": "A-1"}
            assert made["metadata"]["annotations"]["autoflow.dev/started-by"] == "ann@example.com"
            done = await wait(second, objects.finished)
            assert phase(done) == "Succeeded", done["status"]
            assert done["status"]["outputs"] == {"shipped": True}
            reserved = step(done, "reserve")
            assert reserved["phase"] == "Succeeded"
            assert reserved["message"] == f"reused from run {uid}"
            assert reserved["output"]["body"] == {"reserved": "A-1"}
            # Step 1 was not called again; step 2 was, once; step 3 got step 1's output.
            assert (shop.calls("/reserve"), shop.calls("/charge"), shop.calls("/ship")) == (1, 2, 1)
            assert shop.last("/ship").json() == {"reserved": "A-1"}
            detail = await ann("GET", f"namespaces/{a}/runs/{second_id}")
            assert detail.status_code == 200, detail.text
            assert {s["step"]: s["phase"] for s in detail.json()["steps"]} == {
                "reserve": "Succeeded",
                "charge": "Succeeded",
                "ship": "Succeeded",
            }

            # A run succeeded is not retried.
            again = await ann("POST", f"namespaces/{a}/runs/{second_id}/retry")
            assert again.status_code == 409 and "only a failed run" in again.json()["detail"]

            # kubectl's way, with other inputs: the runner refuses before any step runs.
            forged = objects.run("orders-forged", inputs={"orderId": "B-2"}, retryOf=uid)
            apiserver.create(forged, namespace=a)
            refused_run = await wait(objects.placed(forged, a), objects.finished)
            assert phase(refused_run) == "Failed"
            cond = objects.condition(refused_run, "Succeeded")
            assert cond["reason"] == "RetryRefused"
            assert "inputs differ from this run's (orderId)" in cond["message"]
            # Its pod has exited (the Job is complete) and not one step ran.
            await wait(
                objects.job_of(objects.placed(forged, a)), lambda j: j["status"].get("succeeded")
            )
            assert (shop.calls("/reserve"), shop.calls("/charge"), shop.calls("/ship")) == (1, 2, 1)

            # The Workflow changed since: its steps' outputs cannot be reused.
            changed = json.loads(json.dumps(spec).replace("/ship", "/ship?v=2"))
            apiserver.merge_patch(objects.placed(objects.workflow(), a), {"spec": changed})
            stale = await ann("POST", f"namespaces/{a}/runs/{first_id}/retry")
            assert stale.status_code == 409
            assert "rerun it instead" in stale.json()["detail"]


async def test_dashboard_figures_are_per_namespace(
    apiserver: apiserver_mod.APIServer,
    two_namespaces: tuple[str, str],
    people: tuple[Person, Person, list[str]],
    tmp_path: pathlib.Path,
) -> None:
    """A Workflow "orders" in each namespace, with runs in the (real) run store: Bob, who may
    read namespace B only, sees B's figures and none of A's; Ann sees A's; the two are never
    summed into one "orders"."""
    a, b = two_namespaces
    ann, bob, _ = people
    for ns in (a, b):
        apiserver.apply({**yaml.safe_load(FLOW), "metadata": {"name": "orders", "namespace": ns}})
    now = time.time()
    history = await store.open_store(f"sqlite:///{tmp_path / 'webui-runs.db'}")
    try:
        # A: three runs, one failed; B: one run, succeeded.
        for run_id, ns, phase in (
            ("a-1", a, "Succeeded"),
            ("a-2", a, "Failed"),
            ("a-3", a, "Succeeded"),
            ("b-1", b, "Succeeded"),
        ):
            at = now - 600
            await history.record(
                run_id,
                [
                    {"t": "run", "runId": run_id, "workflow": "orders", "namespace": ns,
                     "trigger": "job", "specHash": "h", "inputs": {}, "startedAt": at},
                    {"t": "end", "phase": phase, "outputs": None, "at": at + 1},
                ],
            )  # fmt: skip
    finally:
        await history.aclose()

    seen_by_bob = await bob("GET", f"namespaces/{b}/stats", params={"window": "24h"})
    assert seen_by_bob.status_code == 200, seen_by_bob.text
    figures = seen_by_bob.json()
    assert (figures["runs"], figures["succeeded"], figures["failed"]) == (1, 1, 0)
    assert [(w["namespace"], w["workflow"], w["count"]) for w in figures["workflows"]] == [
        (b, "orders", 1)
    ]
    seen_by_ann = (await ann("GET", f"namespaces/{a}/stats", params={"window": "7d"})).json()
    assert (seen_by_ann["runs"], seen_by_ann["failed"]) == (3, 1)
    assert [(w["namespace"], w["count"]) for w in seen_by_ann["workflows"]] == [(a, 3)]
    assert (await bob("GET", f"namespaces/{a}/stats")).status_code == 403
    # The workflow lists' figures are the namespace's too.
    (listed,) = (await bob("GET", f"namespaces/{b}/workflows")).json()["items"]
    assert (listed["runs24h"], listed["successRatio"]) == (1, 1.0)
    (mine,) = (await ann("GET", f"namespaces/{a}/workflows")).json()["items"]
    assert mine["runs24h"] == 3 and mine["successRatio"] == pytest.approx(2 / 3)
