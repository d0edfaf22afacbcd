"""The operator's decisions as pure functions: plain dicts in, plain dicts out, no cluster.

Grouped by concern: names; starting a run; the runner's access (and the RBAC manifests it
must agree with); the Job; what a run's status becomes (summarize, cancel); run history;
the Workflow's Ready condition; Events; and the runner's status journal, the contract
between the runner that writes a run's status and the operator that reads it.
"""

from __future__ import annotations

import asyncio
import copy
import pathlib
import re
from typing import Any

import pytest
import yaml

from autoflow.crds import meta
from autoflow.operator import events, runs, workflows
from autoflow.operator import history as history_mod
from autoflow.operator import settings as settings_mod
from autoflow.runners import kube
from autoflow.runners.job import journal as journal_mod
from autoflow.runners.job import runner as job_mod

REPO = pathlib.Path(__file__).resolve().parents[1]
UID = "0f9a1c52-7d2e-4c1b-9d8e-3a6b5c4d2e1f"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SETTINGS = settings_mod.Settings(runner_image="ghcr.io/autoflow/autoflow:test")

SPEC: dict[str, Any] = {
    "inputs": {"orderId": {"type": "string", "required": True}},
    "steps": [{"id": "hello", "uses": "core.log", "with": {"message": "${ inputs.orderId }"}}],
}


def workflow(spec: dict[str, Any] | None = None, generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "orders", "namespace": "shop", "generation": generation},
        "spec": copy.deepcopy(spec if spec is not None else SPEC),
    }


def run(
    name: str = "orders-1", status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "autoflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": "shop", "uid": UID, "generation": 1},
        "spec": {"workflowRef": {"name": "orders"}, "inputs": {"orderId": "A-1"}, **spec},
        "status": status or {},
    }


def started(spec: dict[str, Any] | None = None, **run_spec: Any) -> dict[str, Any]:
    """A run the operator has started (snapshot written, Pending)."""
    new = run(**run_spec)
    new["status"] = runs.start_status(new, workflow(spec), [])
    return new


def succeeded_condition(status: dict[str, Any]) -> dict[str, Any]:
    (cond,) = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    return dict(cond)


# -- names -------------------------------------------------------------------------------------


def test_names_are_the_run_name_when_it_fits() -> None:
    assert runs.job_name(run()) == "orders-1"
    assert runs.access_name(run()) == "autoflow-run-orders-1"
    assert runs.label_value("orders") == "orders"


@pytest.mark.parametrize("name", ["a" * 64, "a" * 60 + "-b.c", "x" * 253, "ab-" * 30])
def test_long_names_are_cut_to_valid_labels_with_a_hash(name: str) -> None:
    for made in (runs.job_name(run(name)), runs.access_name(run(name)), runs.label_value(name)):
        assert len(made) <= 63
        assert DNS_LABEL.match(made), made
    # different runs of similar long names get different names
    assert runs.job_name(run(name)) != runs.job_name(
        {**run(name), "metadata": {**run(name)["metadata"], "uid": "other"}}
    )


# -- starting a run ----------------------------------------------------------------------------


def test_a_run_starts_pending_with_a_snapshot_of_the_workflow() -> None:
    status = runs.start_status(run(), workflow(), [])

    assert status["phase"] == "Pending"
    assert status["workflowSnapshot"] == SPEC
    assert status["workflowGeneration"] == 3
    assert status["jobName"] == "orders-1"
    cond = succeeded_condition(status)
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == ("Unknown", "Pending", 1)


@pytest.mark.parametrize(
    ("wf", "problems", "inputs", "reason", "message"),
    [
        (None, [], {"orderId": "A-1"}, "WorkflowNotFound", "Workflow 'orders' does not exist"),
        (workflow(), ["step 'x': bad"], {"orderId": "A-1"}, "InvalidWorkflow", "step 'x': bad"),
        (workflow(), [], {}, "InvalidInputs", "required input 'orderId' is missing"),
        (workflow(), [], {"orderId": 5}, "InvalidInputs", "orderId"),
        (workflow(), [], {"orderId": "A", "extra": 1}, "InvalidInputs", "unknown input 'extra'"),
    ],
)
def test_a_run_that_cannot_start_fails_at_once(
    wf: dict[str, Any] | None,
    problems: list[str],
    inputs: dict[str, Any],
    reason: str,
    message: str,
) -> None:
    status = runs.start_status(run(inputs=inputs), wf, problems)

    assert status["phase"] == "Failed"
    assert "workflowSnapshot" not in status
    cond = succeeded_condition(status)
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert message in cond["message"] and message in status["message"]
    assert status["finishedAt"]


# -- the runner's access -----------------------------------------------------------------------


def test_a_run_gets_its_own_service_account_role_and_binding() -> None:
    account, role, binding = runs.render_runner_access(started())

    name = "autoflow-run-orders-1"
    for obj in (account, role, binding):
        assert (obj["metadata"]["name"], obj["metadata"]["namespace"]) == (name, "shop")
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("WorkflowRun", "orders-1", UID)
        assert owner["controller"] is True
    assert account["kind"] == "ServiceAccount"
    assert role["rules"] == [
        {
            "apiGroups": ["autoflow.dev"],
            "resources": ["workflowruns"],
            "verbs": ["get"],
            "resourceNames": ["orders-1"],
        },
        {
            "apiGroups": ["autoflow.dev"],
            "resources": ["workflowruns/status"],
            "verbs": ["patch"],
            "resourceNames": ["orders-1"],
        },
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "shop"}]


def test_a_run_may_read_exactly_the_integrations_its_steps_name_and_their_secrets() -> None:
    spec = {
        **SPEC,
        "steps": [
            {"id": "a", "uses": "http.request", "integration": "crm", "with": {"url": "/x"}},
            {"id": "b", "uses": "http.request", "integration": "erp", "with": {"url": "/y"}},
        ],
        "finally": [{"id": "c", "uses": "slack.post_message", "integration": "chat"}],
    }
    run = started(spec)
    assert runs.integrations_used(run) == ["chat", "crm", "erp"]
    found = [
        {"metadata": {"name": "crm"}, "spec": {"secretRef": {"name": "crm-creds"}}},
        {
            "metadata": {"name": "chat"},
            "spec": {
                "secretRef": {"name": "chat-creds"},
                "oauth2": {"tokenSecretName": "chat-tokens"},
            },
        },
    ]  # erp is missing: the runner says so when a step uses it
    _, role, _ = runs.render_runner_access(run, found)

    assert role["rules"][2:] == [
        {
            "apiGroups": ["autoflow.dev"],
            "resources": ["integrations"],
            "verbs": ["get"],
            "resourceNames": ["chat", "crm"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["chat-creds", "chat-tokens", "crm-creds"],
        },
    ]


def test_a_run_without_integrations_gets_no_secret_access_at_all() -> None:
    # An empty resourceNames would mean every Secret in the namespace.
    _, role, _ = runs.render_runner_access(started(), [])
    assert all(rule["resources"] != ["secrets"] for rule in role["rules"])
    no_secrets = [{"metadata": {"name": "open"}, "spec": {}}]
    _, role, _ = runs.render_runner_access(started(), no_secrets)
    assert [r["resources"] for r in role["rules"]][2:] == [["integrations"]]


def test_a_workflow_service_account_is_bound_instead_of_making_one() -> None:
    spec = {**SPEC, "runtime": {"serviceAccountName": "shop-runner"}}
    objs = runs.render_runner_access(started(spec))

    assert [o["kind"] for o in objs] == ["Role", "RoleBinding"]
    assert objs[1]["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-runner", "namespace": "shop"}
    ]
    assert runs.workflow_service_account(workflow(spec)) == "shop-runner"
    assert runs.workflow_service_account(workflow()) is None


def _manifests(name: str) -> list[dict[str, Any]]:
    text = (REPO / "config" / "rbac" / name).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


def test_the_runner_cluster_role_states_the_same_rules_the_operator_grants() -> None:
    (role,) = [d for d in _manifests("runner.yaml") if d["kind"] == "ClusterRole"]
    assert role["rules"] == runs.RUNNER_RULES + runs.INTEGRATION_RULES


def test_the_operator_holds_what_it_grants_runners_and_no_wildcards() -> None:
    # RBAC lets the operator create a Role only with permissions it holds itself (it has no
    # escalate or bind verbs), so its ClusterRole must cover the runner's rules.
    roles = [d for d in _manifests("operator.yaml") if d["kind"] == "ClusterRole"]
    (role,) = [r for r in roles if r["metadata"]["name"] == "autoflow-operator"]
    for rule in runs.RUNNER_RULES + runs.INTEGRATION_RULES:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert _allows(role["rules"], group, resource, verb), (resource, verb)
    for rule in [r for role_ in roles for r in role_["rules"]]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    # The operator's and its admission webhook's (docs/install.md), both to its account.
    for binding in [d for d in _manifests("operator.yaml") if d["kind"] == "ClusterRoleBinding"]:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "autoflow-operator", "namespace": "autoflow-system"}
        ]


# -- the Job -----------------------------------------------------------------------------------


def test_the_job_runs_the_runner_for_this_run() -> None:
    job = runs.render_job(started(), SETTINGS)

    assert job["metadata"]["name"] == "orders-1"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "autoflow",
        "autoflow.dev/run-uid": UID,
        "autoflow.dev/workflow": "orders",
    }
    assert job["metadata"]["ownerReferences"] == [meta.owner_reference(run(), "WorkflowRun")]
    spec = job["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert "activeDeadlineSeconds" not in spec  # no workflow timeout
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "autoflow-run-orders-1"
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/autoflow/autoflow:test"
    assert container["command"] == ["autoflow", "runner", "--run", "shop/orders-1"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "AUTOFLOW_RUN_NAME", "value": "orders-1"} in container["env"]


def test_the_runner_knows_the_grace_period_its_pod_has_after_sigterm() -> None:
    pod = runs.render_job(started(), SETTINGS)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}

    assert pod["terminationGracePeriodSeconds"] == runs.RUNNER_GRACE_SECONDS
    # The steps in flight get the pod's grace less a margin for the last status write.
    grace = job_mod.grace_seconds({job_mod.GRACE_ENV: env[runs.GRACE_ENV]})
    assert grace == runs.RUNNER_GRACE_SECONDS - job_mod.GRACE_MARGIN_SECONDS


def test_runner_jobs_get_the_shared_limits_redis_without_writing_its_password() -> None:
    def redis_env(settings: settings_mod.Settings) -> list[dict[str, Any]]:
        (container,) = runs.render_job(started(), settings)["spec"]["template"]["spec"][
            "containers"
        ]
        return [e for e in container["env"] if e["name"] == "AUTOFLOW_REDIS_URL"]

    assert redis_env(SETTINGS) == []
    plain = SETTINGS.model_copy(update={"redis_url": "redis://limits.autoflow-system:6379/0"})
    assert redis_env(plain) == [
        {"name": "AUTOFLOW_REDIS_URL", "value": "redis://limits.autoflow-system:6379/0"}
    ]
    secret = SETTINGS.model_copy(update={"redis_secret": "autoflow-redis"})
    assert redis_env(secret) == [
        {
            "name": "AUTOFLOW_REDIS_URL",
            "valueFrom": {
                "secretKeyRef": {"name": "autoflow-redis", "key": "url", "optional": True}
            },
        }
    ]


def test_the_job_follows_the_workflow_runtime_settings() -> None:
    runtime = {
        "image": "example/runner:2",
        "serviceAccountName": "shop-runner",
        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "env": {"REGION": "eu"},
    }
    job = runs.render_job(started({**SPEC, "runtime": runtime, "timeout": "10m"}), SETTINGS)

    assert job["spec"]["activeDeadlineSeconds"] == 600 + runs.DEADLINE_GRACE_SECONDS
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shop-runner"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == runtime["tolerations"]
    (container,) = pod["containers"]
    assert container["image"] == "example/runner:2"
    assert container["resources"] == runtime["resources"]
    assert {"name": "AUTOFLOW_ENV_REGION", "value": "eu"} in container["env"]


def test_the_job_comes_from_the_snapshot_not_the_workflow_now() -> None:
    before = started()
    later = {**SPEC, "runtime": {"image": "changed"}}
    before_job = runs.render_job(before, SETTINGS)
    assert runs.start_status(run(), workflow(later), [])["workflowSnapshot"] == later
    assert before_job["spec"]["template"]["spec"]["containers"][0]["image"] != "changed"


# -- what the status becomes -------------------------------------------------------------------


def _with(base: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {**base, "status": {**base["status"], **status}}


def _job(
    active: int = 0, suspend: bool = False, terminating: int | None = None, **conds: str
) -> dict[str, Any]:
    conditions = [
        {"type": t, "status": "True", "reason": reason, "message": f"{t}: {reason}"}
        for t, reason in conds.items()
    ]
    status: dict[str, Any] = {"active": active, "ready": active, "conditions": conditions}
    if terminating is not None:
        status["terminating"] = terminating
    return {"spec": {"suspend": suspend}, "status": status}


RESULT_CASES = [
    ({"phase": "Succeeded"}, "Succeeded", "True", "Succeeded", "the run succeeded"),
    (
        {"phase": "Failed", "error": "step 'pay' failed: card declined"},
        "Failed",
        "False",
        "StepFailed",
        "step 'pay' failed: card declined",
    ),
    (
        {"phase": "Failed", "error": "the run timed out after 60s"},
        "Failed",
        "False",
        "TimedOut",
        "the run timed out after 60s",
    ),
    (
        {"phase": "Cancelled", "error": "the run was cancelled"},
        "Cancelled",
        "False",
        "Cancelled",
        "the run was cancelled",
    ),
]


@pytest.mark.parametrize(("result", "phase", "value", "reason", "message"), RESULT_CASES)
def test_the_runners_result_decides_how_a_run_ends(
    result: dict[str, Any], phase: str, value: str, reason: str, message: str
) -> None:
    status = runs.summarize(_with(started(), result=result), None)

    assert status["phase"] == phase
    cond = succeeded_condition(status)
    assert (cond["status"], cond["reason"], cond["message"]) == (value, reason, message)
    assert status["message"] == message and status["finishedAt"]


def test_the_result_wins_over_the_job() -> None:
    done = _with(started(), result={"phase": "Succeeded"})
    assert runs.summarize(done, _job(Failed="BackoffLimitExceeded"))["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("job", "cancel", "phase", "reason"),
    [
        (_job(Failed="BackoffLimitExceeded"), False, "Failed", "BackoffLimitExceeded"),
        (_job(Failed="DeadlineExceeded"), False, "Failed", "DeadlineExceeded"),
        (_job(Failed="BackoffLimitExceeded"), True, "Cancelled", "Cancelled"),
        (_job(Complete="CompletionsReached"), False, "Failed", "NoResult"),
        (_job(suspend=True, Suspended="JobSuspended"), True, "Cancelled", "Cancelled"),
    ],
)
def test_a_job_that_ended_without_a_result_ends_the_run(
    job: dict[str, Any], cancel: bool, phase: str, reason: str
) -> None:
    status = runs.summarize(started(cancel=cancel), job)

    assert status["phase"] == phase
    assert succeeded_condition(status)["reason"] == reason


def test_a_run_is_running_once_its_pod_is_active_or_the_runner_wrote() -> None:
    by_job = runs.summarize(started(), _job(active=1))
    by_runner = runs.summarize(_with(started(), startedAt="2025-03-01T09:00:00Z"), None)

    for status in (by_job, by_runner):
        assert status["phase"] == "Running"
        cond = succeeded_condition(status)
        assert (cond["status"], cond["reason"]) == ("Unknown", "Running")
    running = _with(started(), **by_job)
    assert runs.summarize(running, _job(active=1)) == {}  # nothing new


def test_nothing_changes_a_finished_run_or_a_pending_one_without_news() -> None:
    finished = _with(started(), phase="Succeeded")
    assert runs.summarize(finished, _job(Failed="BackoffLimitExceeded")) == {}
    assert runs.summarize(started(), None) == {}
    assert runs.summarize(started(), _job()) == {}
    # a suspended Job whose pod still runs: the runner is still finishing (finally)
    still = runs.summarize(started(cancel=True), _job(active=1, suspend=True))
    assert still["phase"] == "Running"


def test_a_cancelled_run_is_not_over_while_its_runner_pod_is_terminating() -> None:
    # What the Job controller writes at once on suspend: the pod is no longer active or
    # ready but terminating (the runner is running finally), and the Job is Suspended.
    stopping = _job(suspend=True, terminating=1, Suspended="JobSuspended")
    status = runs.summarize(started(cancel=True), stopping)
    assert status.get("phase") != "Cancelled"
    assert status["phase"] == "Running"
    # The runner's own end record ends it, whatever the Job says.
    recorded = _with(started(cancel=True), result={"phase": "Cancelled", "error": "cancelled"})
    assert runs.summarize(recorded, stopping)["phase"] == "Cancelled"
    # A runner that exited without one (killed when its grace ran out): over once it is gone.
    gone = _job(suspend=True, terminating=0, Suspended="JobSuspended")
    assert runs.summarize(started(cancel=True), gone)["phase"] == "Cancelled"
    # Not before the Job says so: a suspended Job still counting a ready pod.
    still_ready = _job(active=1, suspend=True, terminating=0)
    assert runs.summarize(started(cancel=True), still_ready)["phase"] == "Running"


def test_a_cancelled_run_without_a_job_ends_at_once() -> None:
    status = runs.cancelled(started(cancel=True), None)

    assert status["phase"] == "Cancelled"
    assert succeeded_condition(status)["message"] == "cancelled before the runner started"
    assert runs.cancelled(_with(started(), phase="Failed"), None) == {}


def test_an_ending_keeps_the_finish_time_the_runner_recorded() -> None:
    running = _with(started(), startedAt="2025-03-01T09:00:00Z", phase="Running")
    done = runs.summarize(
        _with(running, result={"phase": "Failed"}, finishedAt="2025-03-01T09:05:00Z"), None
    )
    assert done["finishedAt"] == "2025-03-01T09:05:00Z"


# -- run history -------------------------------------------------------------------------------


def _finished(name: str, phase: str, at: str, wf: str = "orders") -> dict[str, Any]:
    r = run(name, status={"phase": phase, "finishedAt": at})
    r["metadata"]["uid"] = f"uid-{name}"
    r["spec"]["workflowRef"]["name"] = wf
    return r


HISTORY = [
    _finished("ok-1", "Succeeded", "2025-03-01T09:00:00Z"),
    _finished("bad-1", "Failed", "2025-03-01T09:01:00Z"),
    _finished("ok-2", "Succeeded", "2025-03-01T09:02:00Z"),
    _finished("stop-1", "Cancelled", "2025-03-01T09:03:00Z"),
    _finished("ok-3", "Succeeded", "2025-03-01T09:04:00Z"),
    run("running", status={"phase": "Running"}),
    _finished("other-1", "Succeeded", "2025-03-01T08:00:00Z", wf="other"),
]
NOW = 1740819900.0  # 2025-03-01T09:05:00Z


def _names(found: list[dict[str, Any]]) -> list[str]:
    return [r["metadata"]["name"] for r in found]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (None, []),
        ({}, []),
        ({"successfulRunsLimit": 1}, ["ok-1", "ok-2"]),
        ({"failedRunsLimit": 1}, ["bad-1"]),  # Cancelled counts with Failed
        (
            {"successfulRunsLimit": 0, "failedRunsLimit": 0},
            ["ok-1", "bad-1", "ok-2", "stop-1", "ok-3"],
        ),
        ({"ttlSecondsAfterFinished": 150}, ["ok-1", "bad-1", "ok-2"]),
        (
            {"ttlSecondsAfterFinished": 150, "successfulRunsLimit": 0},
            ["ok-1", "bad-1", "ok-2", "ok-3"],
        ),
        ({"successfulRunsLimit": 10, "failedRunsLimit": 10}, []),
    ],
)
def test_history_deletes_the_oldest_finished_runs_of_the_workflow(
    history: dict[str, Any] | None, expected: list[str]
) -> None:
    assert _names(history_mod.expired_runs(HISTORY, "orders", history, NOW)) == expected


def test_a_run_expires_its_ttl_after_it_finished() -> None:
    done = _finished("ok-1", "Succeeded", "2025-03-01T09:00:00Z")
    assert history_mod.expires_at(done, {"ttlSecondsAfterFinished": 60}) == NOW - 240
    assert history_mod.expires_at(done, {"successfulRunsLimit": 1}) is None
    assert (
        history_mod.expires_at(run(status={"phase": "Running"}), {"ttlSecondsAfterFinished": 1})
        is None
    )


# -- the Workflow's Ready condition ------------------------------------------------------------


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    (cond,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    return dict(cond)


def test_a_valid_workflow_is_ready_for_its_generation() -> None:
    status = workflows.status(workflow(), [])

    assert status["observedGeneration"] == 3
    assert _ready(status) | {"lastTransitionTime": ""} == {
        "type": "Ready",
        "status": "True",
        "reason": "Valid",
        "message": "",
        "observedGeneration": 3,
        "lastTransitionTime": "",
    }


def test_an_invalid_workflow_says_which_step_and_field() -> None:
    spec = {
        "steps": [
            {"id": "a", "uses": "core.set", "with": {"values": {"x": 1}}},
            {
                "id": "b",
                "uses": "core.log",
                "needs": [],
                "with": {"message": "${ steps.a.output }"},
            },
        ]
    }
    cond = _ready(workflows.status(workflow(spec), []))

    assert (cond["status"], cond["reason"]) == ("False", "Invalid")
    assert cond["message"].startswith("step 'b', field 'with.message': ")
    assert "'a' is not upstream" in cond["message"]


def test_missing_integrations_are_their_own_reason_until_they_exist() -> None:
    spec = {
        "steps": [
            {"id": "fetch", "uses": "http.request", "integration": "shop", "with": {"url": "/x"}}
        ]
    }
    missing = workflows.status(workflow(spec), ["other"])
    cond = _ready(missing)
    assert (cond["status"], cond["reason"]) == ("False", "IntegrationNotFound")
    assert cond["message"] == (
        "step 'fetch', field 'integration': integration 'shop' does not exist in this namespace"
    )

    found = workflows.status({**workflow(spec), "status": missing}, ["shop"])
    assert _ready(found)["status"] == "True"
    again = workflows.status({**workflow(spec), "status": found}, ["shop"])
    assert _ready(again)["lastTransitionTime"] == _ready(found)["lastTransitionTime"]


def test_an_integration_of_another_connector_type_is_named_with_both_types() -> None:
    spec = {
        "steps": [
            {"id": "fetch", "uses": "http.request", "integration": "shop", "with": {"url": "/x"}}
        ]
    }
    cond = _ready(workflows.status(workflow(spec), {"shop": "postgres"}))
    assert (cond["status"], cond["reason"]) == ("False", "Invalid")
    assert cond["message"] == (
        "step 'fetch', field 'integration': integration 'shop' is of type 'postgres', but "
        "http.request needs an integration of type 'http'"
    )
    assert _ready(workflows.status(workflow(spec), {"shop": "http"}))["status"] == "True"


# -- Events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"phase": "Pending"}, {"phase": "Running"}, ("Normal", "Started")),
        ({"phase": "Running"}, {"phase": "Succeeded"}, ("Normal", "Succeeded")),
        ({"phase": "Running"}, {"phase": "Cancelled"}, ("Normal", "Cancelled")),
        (
            {"phase": "Running"},
            {
                "phase": "Failed",
                "message": "m",
                "conditions": [{"type": "Succeeded", "reason": "StepFailed"}],
            },
            ("Warning", "StepFailed"),
        ),
        ({}, {"phase": "Pending"}, None),
        ({"phase": "Running"}, {"phase": "Running"}, None),
    ],
)
def test_runs_announce_their_transitions(
    before: dict[str, Any], after: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    event = events.for_run(before, after)
    assert (None if event is None else (event.type, event.reason)) == expected


def test_a_workflow_is_announced_when_it_becomes_or_stays_invalid_anew() -> None:
    invalid = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Invalid",
                "message": "m",
                "observedGeneration": 1,
            }
        ]
    }
    valid = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Valid", "observedGeneration": 1}
        ]
    }
    assert events.for_workflow({}, invalid) == events.Event("Warning", "Invalid", "m")
    assert events.for_workflow(invalid, invalid) is None  # a restart judges it again: quiet
    again = copy.deepcopy(invalid)
    again["conditions"][0]["observedGeneration"] = 2
    assert events.for_workflow(invalid, again) is not None  # edited, still invalid
    assert events.for_workflow(invalid, valid) is None


# -- the runner's status journal ---------------------------------------------------------------


class FakeClient:
    """Records status patches; ``fail`` makes the next ones fail."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.fail = 0

    async def patch(self, url: str, body: Any, content_type: str = "") -> dict[str, Any]:
        if self.fail:
            self.fail -= 1
            raise kube.ApiError(422, "Invalid", "no")
        self.patches.append(copy.deepcopy(body["status"]))
        return {}


HEADER = {"t": "run", "runId": UID, "workflow": "orders", "specHash": "h", "inputs": {}}


def _journal(status: dict[str, Any] | None = None) -> tuple[journal_mod.StatusJournal, FakeClient]:
    client = FakeClient()
    journal = journal_mod.StatusJournal(client, run(status=status), HEADER)  # type: ignore[arg-type]
    return journal, client


def test_a_status_written_by_one_pod_is_read_back_by_the_next() -> None:
    async def write() -> dict[str, Any]:
        journal, client = _journal()
        journal.append({**HEADER, "startedAt": 1740819600.0})
        journal.append({"t": "start", "step": "a", "attempt": 1})
        journal.append(
            {"t": "step", "step": "a", "phase": "Succeeded", "output": {"n": 1}, "attempts": 1}
        )
        journal.append({"t": "start", "step": "each", "attempt": 1})
        journal.append({"t": "item", "step": "each", "index": 0, "output": "x"})
        journal.append({"t": "item", "step": "each", "index": 2, "output": "z"})
        await journal.flush()
        merged: dict[str, Any] = {}
        for patch in client.patches:
            merged.update(patch)
        return merged

    status = asyncio.run(write())
    # The CRD has no field for finished foreach items: a running step keeps them in output.
    (each,) = [s for s in status["steps"] if s["id"] == "each"]
    assert each["phase"] == "Running"
    assert each["output"] == {"completedItems": {"0": "x", "2": "z"}}

    journal, _ = _journal(status)
    records = journal.read()
    assert records[0]["startedAt"] == 1740819600.0
    assert {"t": "step", "step": "a", "phase": "Succeeded"}.items() <= records[1].items()
    assert records[1]["output"] == {"n": 1}
    assert {"t": "item", "step": "each", "index": 0, "output": "x"} in records
    assert {"t": "item", "step": "each", "index": 2, "output": "z"} in records
    assert {"t": "start", "step": "each", "attempt": 1} in records


def test_the_next_pod_reads_finished_steps_in_the_order_they_finished() -> None:
    """A resumed run replays its decisions in the order the steps were recorded."""

    async def write() -> dict[str, Any]:
        journal, client = _journal()
        journal.append({**HEADER, "startedAt": 1740819600.0})
        for sid in ("slow", "fast", "late"):
            journal.append({"t": "start", "step": sid, "attempt": 1})
        for sid in ("fast", "slow"):
            journal.append({"t": "step", "step": sid, "phase": "Succeeded", "attempts": 1})
        await journal.flush()
        merged: dict[str, Any] = {}
        for patch in client.patches:
            merged.update(patch)
        return merged

    journal, _ = _journal(asyncio.run(write()))
    finished = [r["step"] for r in journal.read() if r["t"] == "step"]
    assert finished == ["fast", "slow"]
    assert {"t": "start", "step": "late", "attempt": 1} in journal.read()


def test_the_end_marks_steps_stopped_in_flight() -> None:
    async def write() -> dict[str, Any]:
        journal, client = _journal()
        journal.append({**HEADER, "startedAt": 1740819600.0})
        journal.append({"t": "start", "step": "wait", "attempt": 1})
        journal.append(
            {"t": "end", "phase": "Cancelled", "error": "the run was cancelled", "at": 1740819660.0}
        )
        await journal.flush()
        return client.patches[-1]

    status = asyncio.run(write())
    (wait,) = status["steps"]
    assert (wait["phase"], wait["message"]) == ("Cancelled", "stopped: the run was cancelled")
    assert status["result"] == {
        "phase": "Cancelled",
        "error": "the run was cancelled",
        "runId": UID,
    }


def test_large_outputs_are_replaced_by_a_marker() -> None:
    async def write() -> dict[str, Any]:
        journal, client = _journal()
        big = "x" * (journal_mod.MAX_STEP_OUTPUT_BYTES + 1)
        journal.append({"t": "step", "step": "a", "phase": "Succeeded", "output": big})
        await journal.flush()
        return client.patches[-1]

    (step,) = asyncio.run(write())["steps"]
    assert step["outputTruncated"] is True
    assert (
        step["output"]["truncated"] is True
        and len(step["output"]["preview"]) == journal_mod.PREVIEW
    )


def test_one_oversized_run_output_is_truncated_and_the_others_kept() -> None:
    async def write() -> dict[str, Any]:
        journal, client = _journal()
        outputs = {
            "total": 42,
            "report": "r" * journal_mod.MAX_RUN_OUTPUTS_BYTES,
            "ids": list(range(100)),
        }
        journal.append({"t": "end", "phase": "Succeeded", "outputs": outputs, "at": 1.0})
        await journal.flush()
        return client.patches[-1]

    outputs = asyncio.run(write())["outputs"]
    assert outputs["total"] == 42 and outputs["ids"] == list(range(100))
    report = outputs["report"]
    assert report["truncated"] is True and report["bytes"] == journal_mod.MAX_RUN_OUTPUTS_BYTES + 2
    assert report["preview"].startswith('"rrr') and len(report["preview"]) == journal_mod.PREVIEW


def test_run_outputs_are_truncated_largest_first_until_they_fit() -> None:
    limit = 4000
    outputs = {"a": "a" * 1500, "b": "b" * 2500, "c": "c" * 1000, "n": 1}
    kept = journal_mod.bounded_outputs(outputs, limit)
    assert kept["b"]["truncated"] is True  # the largest alone makes room
    assert (kept["a"], kept["c"], kept["n"]) == (outputs["a"], outputs["c"], 1)
    assert journal_mod.bounded_outputs({"n": 1}, limit) == {"n": 1}
    assert journal_mod.bounded_outputs(None, limit) is None
    # Not a mapping, or too many outputs even as markers: one marker, as for a step output.
    assert journal_mod.bounded_outputs("x" * limit, limit)["truncated"] is True
    many = {f"o{i}": "x" * 2000 for i in range(20)}
    assert journal_mod.bounded_outputs(many, limit)["truncated"] is True


def test_a_failed_write_is_written_again_by_the_next_flush() -> None:
    async def write() -> list[dict[str, Any]]:
        journal, client = _journal()
        journal.append({"t": "step", "step": "a", "phase": "Succeeded", "output": 1})
        client.fail = 1
        with pytest.raises(kube.ApiError):
            await journal.flush()
        await journal.flush()
        return client.patches

    (patch,) = asyncio.run(write())
    assert patch["steps"][0]["id"] == "a"
