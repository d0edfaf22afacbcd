"""The operator on WorkflowRuns: a run becomes a Job, the Job runs the runner, the status tells.

The operator runs as its own ServiceAccount (fixture ``operator``); the ``executor`` fixture
plays the Job controller and kubelet (see executor.py), running each Job's command as a local
``autoflow runner`` process with a token of the Job's ServiceAccount, so the runner works
under exactly the per-run RBAC the operator made for it. Steps that call out go to a local
HTTP server (``tests/httpserver.py``) that counts every call.

Grouped by concern: the happy path and what it leaves behind; failures; a runner that dies;
cancellation; runs that cannot start; the runner's RBAC; operator restarts; run history.
"""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import Iterator
from typing import Any

import apiserver as kube
import executor as executor_mod
import httpserver
import httpx
import objects
import operator_process
import pytest
from objects import condition, phase, step, wait_for

RUN = "orders-1"
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def shop() -> Iterator[httpserver.Server]:
    with httpserver.serve() as server:
        for path in ("/v1", "/v2", "/ship", "/alert", "/after", "/cleanup", "/first", "/last"):
            server.route(path, httpserver.Reply.with_json({"ok": True}))
        yield server


def post(step_id: str, url: str, **fields: Any) -> dict[str, Any]:
    """A step that POSTs to ``url`` (an unsafe method: it carries an Idempotency-Key)."""
    return {"id": step_id, "uses": "http.request", "with": {"url": url, "method": "POST"}, **fields}


def delay(step_id: str, duration: str) -> dict[str, Any]:
    return {"id": step_id, "uses": "core.delay", "with": {"duration": duration}}


def start(
    server: kube.APIServer, namespace: str, spec: dict[str, Any], **run_spec: Any
) -> dict[str, Any]:
    """Create the Workflow ``orders`` and a run of it; returns the run as created."""
    server.create(objects.workflow(**spec), namespace=namespace)
    run: dict[str, Any] = server.create(objects.run(RUN, **run_spec), namespace=namespace)
    return run


def running_step(step_id: str) -> Any:
    return lambda run: step(run, step_id).get("phase") == "Running"


def token_for(server: kube.APIServer, namespace: str, account: str) -> str:
    """A token of a ServiceAccount, obtained as the kubelet would (TokenRequest)."""
    answer = server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    token: str = answer["status"]["token"]
    return token


def as_token(server: kube.APIServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=str(server.ca_file)),
        headers={"Authorization": f"Bearer {token}"},
    )


# -- the happy path ----------------------------------------------------------------------------


def test_a_run_becomes_a_job_that_runs_it_to_success(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    shop.route("/orders", httpserver.Reply.with_json({"total": 120, "id": "A-1"}))
    fetch = post("fetch", shop.url("/orders"))
    fetch["with"]["json"] = {"id": "${ inputs.orderId }"}
    spec = {
        "inputs": {"orderId": {"type": "string", "required": True}},
        "steps": [
            fetch,
            {
                "id": "big",
                "uses": "core.condition",
                "with": {"value": "${ steps.fetch.output.body.total > 100 }"},
            },
        ],
        "outputs": {"total": "${ steps.fetch.output.body.total }"},
        "timeout": "5m",
    }
    run = start(apiserver, namespace, spec, inputs={"orderId": "A-1"})

    done = wait_for(apiserver, run, objects.finished)

    assert phase(done) == "Succeeded", done["status"]
    cond = condition(done, "Succeeded")
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded")
    assert done["status"]["outputs"] == {"total": 120}
    assert done["status"]["result"]["phase"] == "Succeeded"
    assert done["status"]["startedAt"] <= done["status"]["finishedAt"]
    fetched = step(done, "fetch")
    assert (fetched["phase"], fetched["attempts"]) == ("Succeeded", 1)
    assert fetched["output"]["body"] == {"total": 120, "id": "A-1"}
    assert step(done, "big")["output"] == {"result": True}
    assert shop.last("/orders").json() == {"id": "A-1"}
    assert done["metadata"]["labels"]["autoflow.dev/workflow"] == "orders"

    # The Job as rendered, and as the executor finished it.
    job = wait_for(apiserver, objects.job_of(run), lambda j: condition(j, "Complete") != {})
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "test"  # AUTOFLOW_RUNNER_IMAGE
    assert container["command"] == ["autoflow", "runner", "--run", f"{namespace}/{RUN}"]
    assert pod["serviceAccountName"] == f"autoflow-run-{RUN}"
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["activeDeadlineSeconds"] == 5 * 60 + 120  # the timeout and a grace
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "name": RUN,
        "uid": run["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = {
        "app.kubernetes.io/managed-by": "autoflow",
        "autoflow.dev/workflow": "orders",
        "autoflow.dev/run-uid": run["metadata"]["uid"],
    }
    assert job["metadata"]["labels"] == labels
    assert labels.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert (job["status"]["succeeded"], job["status"].get("failed", 0)) == (1, 0)
    assert done["status"]["jobName"] == RUN

    # The runner's access: its own ServiceAccount, Role and RoleBinding, owned by the run.
    for api, kind in (("v1", "ServiceAccount"), (RBAC, "Role"), (RBAC, "RoleBinding")):
        obj = apiserver.get(objects.ref(api, kind, f"autoflow-run-{RUN}", namespace))
        assert obj["metadata"]["ownerReferences"] == [owner]

    # What the user sees besides the run: Events, and the Workflow's summary of its runs.
    reasons = {e["reason"] for e in objects.events_about(apiserver, namespace, RUN, "Succeeded")}
    reasons |= {e["reason"] for e in objects.events_about(apiserver, namespace, RUN, "Started")}
    assert reasons == {"Started", "Succeeded"}
    wf = wait_for(
        apiserver,
        objects.placed(objects.workflow(), namespace),
        lambda w: (w.get("status") or {}).get("lastRun") == RUN,
    )
    assert (wf["status"]["lastRunPhase"], wf["status"]["runsTotal"]) == ("Succeeded", 1)
    assert wf["status"]["runsSucceeded"] == 1


def test_a_running_run_keeps_the_workflow_it_started_with(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    spec = {
        "steps": [delay("wait", "1s"), post("notify", shop.url("/v1"))],
        "outputs": {"version": "v1"},
    }
    run = start(apiserver, namespace, spec)
    wait_for(apiserver, run, running_step("wait"))

    edited = {
        "steps": [delay("wait", "1s"), post("notify", shop.url("/v2"))],
        "outputs": {"version": "v2"},
    }
    wf = apiserver.merge_patch(objects.placed(objects.workflow(), namespace), {"spec": edited})
    assert wf["metadata"]["generation"] == 2

    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded", done["status"]
    assert done["status"]["outputs"] == {"version": "v1"}
    assert (shop.calls("/v1"), shop.calls("/v2")) == (1, 0)
    assert done["status"]["workflowGeneration"] == 1
    assert done["status"]["workflowSnapshot"]["outputs"] == {"version": "v1"}


# -- failures ----------------------------------------------------------------------------------


def test_a_failing_step_fails_the_run_with_its_reason(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    spec = {
        "steps": [
            {"id": "charge", "uses": "core.fail", "with": {"message": "card declined"}},
            post("ship", shop.url("/ship")),
        ],
        "onError": [post("alert", shop.url("/alert"))],
    }
    run = start(apiserver, namespace, spec)

    done = wait_for(apiserver, run, objects.finished)

    assert phase(done) == "Failed"
    cond = condition(done, "Succeeded")
    assert (cond["status"], cond["reason"]) == ("False", "StepFailed")
    assert "step 'charge' failed: card declined" in cond["message"]
    assert done["status"]["message"] == cond["message"]
    charge = step(done, "charge")
    assert (charge["phase"], charge["message"]) == ("Failed", "card declined")
    assert step(done, "alert")["phase"] == "Succeeded"
    assert (shop.calls("/ship"), shop.calls("/alert")) == (0, 1)
    (event,) = objects.events_about(apiserver, namespace, RUN, "StepFailed")
    assert event["type"] == "Warning" and "card declined" in event["message"]
    # The runner recorded the failure and exited 0: the Job is not retried.
    job = wait_for(apiserver, objects.job_of(run), lambda j: condition(j, "Complete") != {})
    assert job["status"]["succeeded"] == 1 and len(executor.pods(RUN)) == 1


def test_a_run_over_its_timeout_fails_as_timed_out(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    run = start(apiserver, namespace, {"steps": [delay("wait", "30s")], "timeout": "1s"})

    done = wait_for(apiserver, run, objects.finished)

    cond = condition(done, "Succeeded")
    assert (phase(done), cond["reason"]) == ("Failed", "TimedOut")
    assert "timed out after 1s" in cond["message"]
    assert step(done, "wait")["phase"] == "Cancelled"


def test_a_runner_that_keeps_dying_fails_the_run_when_the_job_gives_up(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    run = start(apiserver, namespace, {"steps": [delay("wait", "60s")]})

    for pod in range(1, 5):  # backoffLimit 3: the fourth failure is one too many
        executor.wait_started(RUN, pod)
        wait_for(apiserver, run, running_step("wait"))
        executor.kill(RUN)

    done = wait_for(apiserver, run, objects.finished)
    cond = condition(done, "Succeeded")
    assert (phase(done), cond["reason"]) == ("Failed", "BackoffLimitExceeded")
    assert "runner Job failed" in cond["message"]
    job = apiserver.get(objects.job_of(run))
    assert job["status"]["failed"] == 4


# -- a runner that dies resumes ----------------------------------------------------------------


def test_a_killed_runner_resumes_in_the_next_pod_without_repeating_steps(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    # The first call of /slow hangs (the runner is killed during it); later ones answer.
    shop.queue(
        "/slow", httpserver.Reply(200, '{"n": 1}', {"Content-Type": "application/json"}, delay=10)
    )
    shop.route("/slow", httpserver.Reply.with_json({"n": 2}))
    spec = {
        "steps": [
            post("first", shop.url("/first")),
            post("slow", shop.url("/slow")),
            post("last", shop.url("/last")),
        ],
        "outputs": {"slow": "${ steps.slow.output.body.n }"},
    }
    run = start(apiserver, namespace, spec)
    wait_for(apiserver, run, lambda r: running_step("slow")(r) and shop.calls("/slow") == 1)

    killed = executor.kill(RUN)

    executor.wait_started(RUN, pod=2)
    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded", done["status"]
    assert killed.process.wait() != 0
    assert (shop.calls("/first"), shop.calls("/slow"), shop.calls("/last")) == (1, 2, 1)
    keys = [r.headers["idempotency-key"] for r in shop.requests if r.path == "/slow"]
    assert keys[0] == keys[1] == f"{run['metadata']['uid']}:slow"
    assert done["status"]["outputs"] == {"slow": 2}
    assert step(done, "first")["attempts"] == 1
    job = wait_for(apiserver, objects.job_of(run), lambda j: condition(j, "Complete") != {})
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)


def test_an_evicted_runner_finishes_its_step_and_the_next_pod_resumes_after_it(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    # /slow answers after 2 s: the runner gets SIGTERM (a node drain) while it waits.
    shop.queue(
        "/slow", httpserver.Reply(200, '{"n": 1}', {"Content-Type": "application/json"}, delay=2)
    )
    spec = {
        "steps": [
            post("first", shop.url("/first")),
            post("slow", shop.url("/slow")),
            post("last", shop.url("/last")),
        ],
        "outputs": {"slow": "${ steps.slow.output.body.n }"},
        "finally": [post("cleanup", shop.url("/cleanup"))],
    }
    run = start(apiserver, namespace, spec)
    wait_for(apiserver, run, lambda r: running_step("slow")(r) and shop.calls("/slow") == 1)

    evicted = executor.evict(RUN)

    # Not a cancel: the step in flight finished and was journaled, nothing else ran, and the
    # runner exited non-zero so the Job started another pod, which resumed after it.
    assert evicted.process.wait(timeout=30) == 128 + signal.SIGTERM
    executor.wait_started(RUN, pod=2)
    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded", done["status"]
    assert done["status"]["outputs"] == {"slow": 1}
    calls = [shop.calls(p) for p in ("/first", "/slow", "/last", "/cleanup")]
    assert calls == [1, 1, 1, 1]  # every step executed once
    assert (step(done, "slow")["phase"], step(done, "slow")["attempts"]) == ("Succeeded", 1)
    job = wait_for(apiserver, objects.job_of(run), lambda j: condition(j, "Complete") != {})
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)
    assert "was interrupted" in executor.logs(RUN)


# -- cancellation ------------------------------------------------------------------------------


def test_cancel_suspends_the_job_the_runner_stops_and_runs_finally(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    spec = {
        "steps": [delay("wait", "60s"), post("after", shop.url("/after"))],
        "finally": [post("cleanup", shop.url("/cleanup"))],
    }
    run = start(apiserver, namespace, spec)
    wait_for(apiserver, run, running_step("wait"))

    apiserver.merge_patch(run, {"spec": {"cancel": True}})

    done = wait_for(apiserver, run, objects.finished, timeout=20)
    cond = condition(done, "Succeeded")
    assert (phase(done), cond["status"], cond["reason"]) == ("Cancelled", "False", "Cancelled")
    assert step(done, "wait")["phase"] == "Cancelled"
    assert step(done, "cleanup")["phase"] == "Succeeded"
    assert (shop.calls("/after"), shop.calls("/cleanup")) == (0, 1)
    job = wait_for(apiserver, objects.job_of(run), lambda j: condition(j, "Suspended") != {})
    assert job["spec"]["suspend"] is True
    assert job["status"].get("active", 0) == 0  # (0 is not written: omitempty)
    assert objects.events_about(apiserver, namespace, RUN, "Cancelled")
    assert len(executor.pods(RUN)) == 1


def test_a_cancelled_run_is_reported_cancelled_only_after_its_slow_finally_finished(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    shop: httpserver.Server,
) -> None:
    # The cleanup call takes 3 s; meanwhile the Job's pod is terminating, no longer active.
    shop.route(
        "/cleanup",
        httpserver.Reply(200, '{"ok": true}', {"Content-Type": "application/json"}, delay=3),
    )
    spec = {
        "steps": [delay("wait", "60s"), post("after", shop.url("/after"))],
        "finally": [post("cleanup", shop.url("/cleanup"))],
    }
    run = start(apiserver, namespace, spec)
    wait_for(apiserver, run, running_step("wait"))

    apiserver.merge_patch(run, {"spec": {"cancel": True}})

    terminating = wait_for(
        apiserver, objects.job_of(run), lambda j: (j.get("status") or {}).get("terminating") == 1
    )
    assert terminating["status"].get("active", 0) == 0
    # The first state in which the run is finished: finally has finished by then.
    done = wait_for(apiserver, run, objects.finished, timeout=30)
    cond = condition(done, "Succeeded")
    assert (phase(done), cond["reason"]) == ("Cancelled", "Cancelled")
    assert step(done, "cleanup")["phase"] == "Succeeded", done["status"]["steps"]
    assert done["status"]["result"]["phase"] == "Cancelled"
    assert (shop.calls("/after"), shop.calls("/cleanup")) == (0, 1)
    assert executor.pods(RUN)[0].process.wait(timeout=30) == 0  # the runner recorded the end


def test_a_run_cancelled_before_it_starts_never_runs(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    run = start(apiserver, namespace, {"steps": [delay("wait", "1s")]}, cancel=True)

    done = wait_for(apiserver, run, objects.finished)

    assert phase(done) == "Cancelled"
    assert condition(done, "Succeeded")["message"] == "cancelled before the runner started"
    with pytest.raises(kube.APIError) as missing:
        apiserver.get(objects.job_of(run))
    assert missing.value.code == 404


# -- runs that cannot start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workflow", "inputs", "reason", "message"),
    [
        pytest.param(
            None, {}, "WorkflowNotFound", "Workflow 'orders' does not exist", id="no-workflow"
        ),
        pytest.param(
            {"inputs": {"count": {"type": "integer", "required": True}}},
            {"count": "many"},
            "InvalidInputs",
            "count",
            id="invalid-inputs",
        ),
        pytest.param(
            {"inputs": {"count": {"type": "integer", "required": True}}},
            {},
            "InvalidInputs",
            "count",
            id="missing-input",
        ),
        pytest.param(
            {"steps": [{"id": "notify", "uses": "nosuch.post", "with": {}}]},
            {},
            "InvalidWorkflow",
            "unknown connector 'nosuch'",
            id="invalid-workflow",
        ),
    ],
)
def test_a_run_that_cannot_start_fails_with_the_reason(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    workflow: dict[str, Any] | None,
    inputs: dict[str, Any],
    reason: str,
    message: str,
) -> None:
    if workflow is not None:
        apiserver.create(objects.workflow(**workflow), namespace=namespace)
    run = apiserver.create(objects.run(RUN, inputs=inputs), namespace=namespace)

    done = wait_for(apiserver, run, objects.finished)

    cond = condition(done, "Succeeded")
    assert (phase(done), cond["status"], cond["reason"]) == ("Failed", "False", reason)
    assert message in cond["message"]
    assert objects.events_about(apiserver, namespace, RUN, reason)
    with pytest.raises(kube.APIError) as missing:
        apiserver.get(objects.job_of(run))
    assert missing.value.code == 404


def test_a_job_left_by_an_earlier_run_of_the_same_name_is_not_adopted(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    first = start(apiserver, namespace, {"steps": [delay("wait", "1s")]})
    stale = wait_for(apiserver, objects.job_of(first), lambda j: True)
    # Let the operator finish with the first run (kopf has recorded what it handled): kopf
    # patches objects by name, so a patch still in flight could land on the second run.
    wait_for(
        apiserver,
        first,
        lambda r: "autoflow.dev/last-handled" in r["metadata"].get("annotations", {}),
    )
    # No garbage collector here: what was made for the run stays, as it may for a while.
    apiserver.delete(first)
    access = [
        objects.ref(api, kind, f"autoflow-run-{RUN}", namespace)
        for api, kind in (("v1", "ServiceAccount"), (RBAC, "Role"), (RBAC, "RoleBinding"))
    ]

    second = apiserver.create(objects.run(RUN), namespace=namespace)
    (event,) = objects.events_about(apiserver, namespace, RUN, "Blocked")
    assert event["involvedObject"]["uid"] == second["metadata"]["uid"]
    assert "exists and belongs to another run" in event["message"]
    assert apiserver.get(stale)["metadata"]["uid"] == stale["metadata"]["uid"]

    for obj in [*access, stale]:  # what the garbage collector would do
        background = {"propagationPolicy": "Background"}  # a Job's default is Orphan
        apiserver.request("DELETE", apiserver.path_of(obj), body=background)
    job = wait_for(
        apiserver,
        objects.job_of(second),
        lambda j: j["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"],
    )
    assert job["metadata"]["uid"] != stale["metadata"]["uid"]


# -- the runner's RBAC: its own run, nothing else -----------------------------------------------


def test_a_runner_may_read_its_run_and_write_its_status_and_nothing_more(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    # No executor: the Jobs never run, the access the operator made for them is what counts.
    start(apiserver, namespace, {"steps": [delay("wait", "1s")]})
    other = apiserver.create(objects.run("orders-2"), namespace=namespace)
    account = f"autoflow-run-{RUN}"
    wait_for(
        apiserver,
        objects.ref(RBAC, "RoleBinding", account, namespace),
        lambda _: True,
    )
    wait_for(apiserver, other, lambda r: phase(r) == "Pending")
    own = apiserver.path("autoflow.dev/v1alpha1", "WorkflowRun", namespace, RUN)
    theirs = apiserver.path_of(other)
    merge = {"Content-Type": "application/merge-patch+json"}

    with as_token(apiserver, token_for(apiserver, namespace, account)) as runner:
        me = runner.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        ).json()["status"]["userInfo"]["username"]
        assert me == f"system:serviceaccount:{namespace}:{account}"

        assert runner.get(own).status_code == 200
        assert (
            runner.patch(
                f"{own}/status", content=b'{"status": {"message": "hi"}}', headers=merge
            ).status_code
            == 200
        )

        assert runner.get(theirs).status_code == 403
        assert (
            runner.patch(f"{theirs}/status", content=b'{"status": {}}', headers=merge).status_code
            == 403
        )
        assert (
            runner.patch(own, content=b'{"spec": {"cancel": true}}', headers=merge).status_code
            == 403
        )
        assert (
            runner.get(
                apiserver.path("autoflow.dev/v1alpha1", "WorkflowRun", namespace)
            ).status_code
            == 403
        )
        assert (
            runner.get(
                apiserver.path("autoflow.dev/v1alpha1", "Workflow", namespace, "orders")
            ).status_code
            == 403
        )
        assert runner.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
        assert runner.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{RUN}").status_code == 403
        assert runner.delete(own).status_code == 403


def test_a_workflow_service_account_is_bound_to_the_run_instead(
    apiserver: kube.APIServer, namespace: str, operator: operator_process.Operator
) -> None:
    spec = {"steps": [delay("wait", "1s")], "runtime": {"serviceAccountName": "shop-runner"}}
    missing = start(apiserver, namespace, spec)
    failed = wait_for(apiserver, missing, objects.finished)
    assert condition(failed, "Succeeded")["reason"] == "InvalidWorkflow"
    assert (
        "ServiceAccount 'shop-runner' does not exist" in condition(failed, "Succeeded")["message"]
    )

    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop-runner"}}
    apiserver.create(sa, namespace=namespace)
    run = apiserver.create(objects.run("orders-2"), namespace=namespace)
    job = wait_for(apiserver, objects.job_of(run), lambda _: True)

    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "shop-runner"
    binding = wait_for(  # made alongside the Job
        apiserver, objects.ref(RBAC, "RoleBinding", "autoflow-run-orders-2", namespace), bool
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-runner", "namespace": namespace}
    ]
    with pytest.raises(kube.APIError):  # no ServiceAccount of its own
        apiserver.get(objects.ref("v1", "ServiceAccount", "autoflow-run-orders-2", namespace))
    with as_token(apiserver, token_for(apiserver, namespace, "shop-runner")) as runner:
        assert runner.get(apiserver.path_of(run)).status_code == 200
        assert runner.get(apiserver.path_of(missing)).status_code == 403


# -- the operator restarts ---------------------------------------------------------------------


def test_runs_created_while_the_operator_is_down_run_when_it_is_back(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    operator.stop()
    run = start(apiserver, namespace, {"steps": [delay("wait", "100ms")]})
    time.sleep(0.5)
    assert phase(apiserver.get(run)) is None

    operator.start()

    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded"


def test_a_run_that_finishes_while_the_operator_is_down_is_summarized_when_it_is_back(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    run = start(apiserver, namespace, {"steps": [delay("wait", "1s")]})
    wait_for(apiserver, run, running_step("wait"))
    operator.stop()
    wait_for(
        apiserver, run, lambda r: (r["status"].get("result") or {}).get("phase") == "Succeeded"
    )
    assert phase(apiserver.get(run)) == "Running"

    operator.start()

    done = wait_for(apiserver, run, objects.finished)
    assert phase(done) == "Succeeded"


# -- run history -------------------------------------------------------------------------------


FAIL_IF_ASKED: dict[str, Any] = {
    "inputs": {"fail": {"type": "boolean", "default": False}},
    "steps": [
        {
            "id": "check",
            "uses": "core.fail",
            "if": "${ inputs.fail }",
            "with": {"message": "asked to"},
        }
    ],
}


def test_finished_runs_beyond_the_history_limits_are_deleted(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    limits = {"successfulRunsLimit": 1, "failedRunsLimit": 1}
    apiserver.create(objects.workflow(**FAIL_IF_ASKED, runHistory=limits), namespace=namespace)

    def round_(n: int) -> list[dict[str, Any]]:
        made = [
            apiserver.create(objects.run(f"ok-{n}"), namespace=namespace),
            apiserver.create(objects.run(f"bad-{n}", inputs={"fail": True}), namespace=namespace),
        ]
        return [wait_for(apiserver, r, objects.finished) for r in made]

    first = round_(1)
    assert [phase(r) for r in first] == ["Succeeded", "Failed"]
    second = round_(2)

    for old in first:
        objects.wait_gone(apiserver, old)
    for kept in second:
        assert apiserver.get(kept)["metadata"]["uid"] == kept["metadata"]["uid"]


def test_finished_runs_are_deleted_after_their_ttl(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    run = start(
        apiserver,
        namespace,
        {"steps": [delay("wait", "100ms")], "runHistory": {"ttlSecondsAfterFinished": 2}},
    )
    done = wait_for(apiserver, run, objects.finished)
    finished = time.monotonic()

    objects.wait_gone(apiserver, done, timeout=15)

    assert time.monotonic() - finished >= 0.5  # not at once: after (about) its TTL
