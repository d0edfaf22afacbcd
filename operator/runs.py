"""WorkflowRun reconciliation as pure functions over plain dicts.

The path of a run reads like its sentence::

    start   = start_status(run, workflow, problems)  # snapshot the spec, check inputs → Pending
    access  = render_runner_access(run)              # ServiceAccount, Role, RoleBinding of the run
    desired = render_job(run, settings)              # the runner Job, from the snapshot only
    apply(access + [desired])                        # (I/O, in handlers) create; 409 means done
    status  = summarize(run, job)                    # Job state + the runner's result → phase

The phase is only a summary of the ``Succeeded`` condition (Unknown while Pending or
Running, True when the run succeeded, False when it failed or was cancelled).

A runner may read its own run and write its status, nothing more: each run gets a Role whose
rules name that run (``resourceNames``), bound to a ServiceAccount made for the run (or to
the Workflow's ``runtime.serviceAccountName``). Everything made for a run is owned by it, so
deleting the run deletes them (the garbage collector follows ``ownerReferences``).

Finished runs are kept as the Workflow's ``runHistory`` says: ``expired_runs`` picks the
ones to delete (beyond ``successfulRunsLimit``/``failedRunsLimit``, or older than
``ttlSecondsAfterFinished``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from autoflow.crds import conditions, errors, meta, workflow
from autoflow.crds import run as run_mod
from autoflow.operator import settings as settings_mod
from autoflow.runners.definitions import inputs as inputs_mod

SUCCEEDED = "Succeeded"
LABEL_RUN_UID = "autoflow.dev/run-uid"
LABEL_WORKFLOW = "autoflow.dev/workflow"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "autoflow"
# Set (with spec.cancel) on a run cancelled by a newer one under concurrency.policy Replace.
ANNOTATION_REPLACED_BY = "autoflow.dev/replaced-by"
WAITING_FOR_RUNNER = "waiting for the runner to start"
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
# A run's Job may outlive the workflow timeout by this much (pod start, onError, finally).
DEADLINE_GRACE_SECONDS = 120
# The runner pod's terminationGracePeriodSeconds, also given to the runner (runners.job reads
# GRACE_ENV): after a SIGTERM its steps in flight get what is left of it to finish.
RUNNER_GRACE_SECONDS = 30
GRACE_ENV = "AUTOFLOW_TERMINATION_GRACE_SECONDS"
STORE_ENV = "AUTOFLOW_STORE_URL"
SUBJECT_KEY_ENV = "AUTOFLOW_STORE_SUBJECT_KEY"
RUNNER_PREFIX = "autoflow-run-"
MAX_NAME = 63

# What a runner may do, and only to its own run (render_runner_access adds resourceNames).
# config/rbac/runner.yaml holds the same rules as a ClusterRole; a test keeps them equal.
RUNNER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [meta.GROUP], "resources": ["workflowruns"], "verbs": ["get"]},
    {"apiGroups": [meta.GROUP], "resources": ["workflowruns/status"], "verbs": ["patch"]},
]
# And read access to the Integrations the run's steps name and to their Secrets (secretRef,
# oauth2.tokenSecretName), narrowed to those names; runner.yaml states these without names.
INTEGRATION_RULES: list[dict[str, Any]] = [
    {"apiGroups": [meta.GROUP], "resources": ["integrations"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]


def phase_of(run: dict[str, Any]) -> str | None:
    phase: str | None = (run.get("status") or {}).get("phase")
    return phase


def is_finished(run: dict[str, Any]) -> bool:
    return phase_of(run) in TERMINAL


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def bounded(name: str, key: str, limit: int = MAX_NAME) -> str:
    """``name`` when it fits in ``limit`` characters, else a prefix of it and a hash of ``key``.

    The result is a DNS label and a valid label value: it starts and ends alphanumeric.
    """
    if len(name) <= limit:
        return name
    return f"{name[: limit - 11].rstrip('-.')}-{_digest(key)}"


def label_value(name: str) -> str:
    """A name as a label value (at most 63 characters)."""
    return bounded(name, name)


def job_name(run: dict[str, Any]) -> str:
    """A Job name derived from the run: the run's own name when it fits in 63 characters."""
    meta_ = run["metadata"]
    return bounded(meta_["name"], meta_.get("uid", meta_["name"]))


def access_name(run: dict[str, Any]) -> str:
    """The name of the run's ServiceAccount, Role and RoleBinding."""
    meta_ = run["metadata"]
    return bounded(RUNNER_PREFIX + meta_["name"], meta_.get("uid", meta_["name"]))


def workflow_name(run: dict[str, Any]) -> str:
    name: str = run["spec"]["workflowRef"]["name"]
    return name


def labels(run: dict[str, Any]) -> dict[str, str]:
    """The labels of everything made for a run (and of the run itself: ``LABEL_WORKFLOW``)."""
    return {
        LABEL_MANAGED: MANAGED_BY,
        LABEL_RUN_UID: run["metadata"]["uid"],
        LABEL_WORKFLOW: label_value(workflow_name(run)),
    }


def owned_by(obj: dict[str, Any], run: dict[str, Any]) -> bool:
    """Whether ``obj`` was made for this run (not for an earlier run of the same name)."""
    uid = run["metadata"]["uid"]
    return any(o.get("uid") == uid for o in obj.get("metadata", {}).get("ownerReferences") or [])


def _snapshot(run: dict[str, Any]) -> workflow.WorkflowSpec:
    return workflow.WorkflowSpec.model_validate((run.get("status") or {})["workflowSnapshot"])


def finished_status(
    run: dict[str, Any], phase: str, reason: str, message: str, at: str | None = None
) -> dict[str, Any]:
    """The status of a run that ended: ``phase``, the ``Succeeded`` condition, ``finishedAt``.

    A run cancelled to make room for a newer one (``ANNOTATION_REPLACED_BY``) says so.
    """
    status = run.get("status") or {}
    replaced_by = (run["metadata"].get("annotations") or {}).get(ANNOTATION_REPLACED_BY)
    if phase == "Cancelled" and replaced_by:
        reason = "Replaced"
        message = f"replaced by run {replaced_by!r} (spec.concurrency.policy Replace)"
    value = {"Succeeded": "True"}.get(phase, "False")
    generation = run["metadata"].get("generation")
    return {
        "phase": phase,
        "message": message[:2048],
        "observedGeneration": generation,
        "finishedAt": status.get("finishedAt") or at or conditions.now(),
        "conditions": conditions.set_condition(
            status.get("conditions"), SUCCEEDED, value, reason, message, generation, at
        ),
    }


def start_status(
    run: dict[str, Any], wf: dict[str, Any] | None, problems: list[str]
) -> dict[str, Any]:
    """Status for a new run: its snapshot and Pending, or Failed with the reason it cannot run."""
    if wf is None:
        ref = workflow_name(run)
        return finished_status(
            run, "Failed", "WorkflowNotFound", f"Workflow {ref!r} does not exist"
        )
    if problems:
        return finished_status(run, "Failed", "InvalidWorkflow", "; ".join(problems))
    model = workflow.WorkflowSpec.model_validate(wf["spec"])
    try:
        values = inputs_mod.resolve(model.inputs, run["spec"].get("inputs") or {}, errors.Where())
        # The data subject the run store would keep a hash of: a run whose inputs give none
        # is refused here, as `autoflow run` refuses it, rather than stored unerasable.
        inputs_mod.data_subject(model, values, errors.Where())
    except errors.InputError as exc:
        return finished_status(run, "Failed", "InvalidInputs", str(exc))
    status = run.get("status") or {}
    generation = run["metadata"].get("generation")
    return {
        "phase": "Pending",
        "observedGeneration": generation,
        "workflowSnapshot": wf["spec"],
        "workflowGeneration": wf["metadata"].get("generation"),
        "jobName": job_name(run),
        "conditions": conditions.set_condition(
            status.get("conditions"),
            SUCCEEDED,
            "Unknown",
            "Pending",
            WAITING_FOR_RUNNER,
            generation,
        ),
    }


def workflow_service_account(wf: dict[str, Any]) -> str | None:
    """The Workflow's ``runtime.serviceAccountName``, if it names one."""
    name: str | None = ((wf.get("spec") or {}).get("runtime") or {}).get("serviceAccountName")
    return name


def runner_service_account(run: dict[str, Any]) -> str:
    """The ServiceAccount the runner pod uses: the Workflow's own, or the one made for the run."""
    runtime = _snapshot(run).runtime
    if runtime is not None and runtime.service_account_name:
        return runtime.service_account_name
    return access_name(run)


def integrations_used(run: dict[str, Any]) -> list[str]:
    """The Integrations the steps of the run's snapshot name, sorted."""
    spec = _snapshot(run)
    steps = [*spec.steps, *spec.on_error, *spec.finally_]
    return sorted({s.integration for s in steps if s.integration})


def integration_secrets(integrations: Iterable[dict[str, Any]]) -> list[str]:
    """The Secrets those Integrations read: ``secretRef.name`` and ``oauth2.tokenSecretName``."""
    names: set[str] = set()
    for intg in integrations:
        spec = intg.get("spec") or {}
        if (spec.get("secretRef") or {}).get("name"):
            names.add(spec["secretRef"]["name"])
        if (spec.get("oauth2") or {}).get("tokenSecretName"):
            names.add(spec["oauth2"]["tokenSecretName"])
    return sorted(names)


def render_runner_access(
    run: dict[str, Any], integrations: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """[ServiceAccount,] Role, RoleBinding: the runner may get this run and patch its status,
    and read the given Integrations (those its steps name) and their Secrets.

    The ServiceAccount is made only when the Workflow names none (``runtime.serviceAccountName``);
    otherwise that account is bound to the run's Role.
    """
    integrations = list(integrations)
    rules = [{**rule, "resourceNames": [run["metadata"]["name"]]} for rule in RUNNER_RULES]
    # An empty resourceNames would grant every object: a rule is added only with names.
    granted = (
        sorted(i["metadata"]["name"] for i in integrations),
        integration_secrets(integrations),
    )
    for rule, names in zip(INTEGRATION_RULES, granted, strict=True):
        if names:
            rules.append({**rule, "resourceNames": names})
    meta_ = run["metadata"]
    name, namespace = access_name(run), meta_["namespace"]
    common = {
        "name": name,
        "namespace": namespace,
        "labels": labels(run),
        "ownerReferences": [meta.owner_reference(run, "WorkflowRun")],
    }
    account = runner_service_account(run)
    objs: list[dict[str, Any]] = []
    if account == name:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": dict(common),
                "automountServiceAccountToken": True,
            }
        )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(common),
            "rules": rules,
        }
    )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(common),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )
    return objs


def render_job(run: dict[str, Any], settings: settings_mod.Settings) -> dict[str, Any]:
    """The runner Job of a run, from the run's snapshot of the Workflow spec."""
    meta_ = run["metadata"]
    snapshot = _snapshot(run)
    runtime = snapshot.runtime or workflow.Runtime()
    labels_ = labels(run)
    env = [
        {"name": "AUTOFLOW_RUN_NAMESPACE", "value": meta_["namespace"]},
        {"name": "AUTOFLOW_RUN_NAME", "value": meta_["name"]},
        {"name": GRACE_ENV, "value": str(RUNNER_GRACE_SECONDS)},
    ]
    if settings.redis_secret:
        ref = {"name": settings.redis_secret, "key": "url", "optional": True}
        env.append({"name": "AUTOFLOW_REDIS_URL", "valueFrom": {"secretKeyRef": ref}})
    elif settings.redis_url:
        env.append({"name": "AUTOFLOW_REDIS_URL", "value": settings.redis_url})
    if settings.store_secret:
        # Optional: a namespace without the Secret runs without the store (the status keeps
        # the summary, the operator still archives it).
        ref = {"name": settings.store_secret, "key": settings.store_secret_key, "optional": True}
        env.append({"name": STORE_ENV, "valueFrom": {"secretKeyRef": ref}})
        if settings.store_subject_key_secret:
            # The key the run's data subject is hashed with (``dataSubject``): without it
            # the runner writes such a run to the store not at all (the archive still does).
            key_ref = {
                "name": settings.store_subject_key_secret,
                "key": settings.store_subject_key_secret_key,
                "optional": True,
            }
            env.append({"name": SUBJECT_KEY_ENV, "valueFrom": {"secretKeyRef": key_ref}})
    env += [{"name": f"AUTOFLOW_ENV_{k}", "value": v} for k, v in sorted(runtime.env.items())]
    container: dict[str, Any] = {
        "name": "runner",
        "image": runtime.image or settings.runner_image,
        "command": ["autoflow", "runner", "--run", f"{meta_['namespace']}/{meta_['name']}"],
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if runtime.resources is not None:
        container["resources"] = runtime.resources.dump()
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": RUNNER_GRACE_SECONDS,
        "serviceAccountName": runner_service_account(run),
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if runtime.node_selector:
        pod["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        pod["tolerations"] = [t.dump() for t in runtime.tolerations]
    spec: dict[str, Any] = {
        "backoffLimit": settings.runner_backoff_limit,
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
        "template": {"metadata": {"labels": labels_}, "spec": pod},
    }
    if snapshot.timeout is not None:
        spec["activeDeadlineSeconds"] = (
            int(meta.parse_duration(snapshot.timeout)) + DEADLINE_GRACE_SECONDS
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run),
            "namespace": meta_["namespace"],
            "labels": labels_,
            "ownerReferences": [meta.owner_reference(run, "WorkflowRun")],
        },
        "spec": spec,
    }


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    cond = conditions.get((job.get("status") or {}).get("conditions"), type_)
    return cond if cond and cond.get("status") == "True" else None


def _result_reason(phase: str, error: str) -> str:
    if phase in {"Succeeded", "Cancelled"}:
        return phase
    if error.startswith("the run timed out"):
        return "TimedOut"
    if error.startswith(run_mod.RETRY_REFUSED):
        return "RetryRefused"
    return "StepFailed"


def runner_stopped(job_status: dict[str, Any]) -> bool:
    """Whether no runner pod of a suspended Job is left running.

    The Job controller stops counting a pod as ``active`` (and ``ready``) as soon as it starts
    terminating, while the runner may still be running ``finally``; ``terminating`` counts it
    until it has exited. A Job controller that does not report ``terminating`` (the
    JobPodReplacementPolicy feature switched off) leaves ``active`` as the only sign.
    """
    if job_status.get("active") or job_status.get("ready"):
        return False
    terminating = job_status.get("terminating")
    return terminating is None or terminating == 0


def summarize(run: dict[str, Any], job: dict[str, Any] | None) -> dict[str, Any]:
    """The run status implied by the runner's result and its Job; {} when nothing changes.

    The runner's result (its end record, ``status.result``) decides how a run ended; a
    cancelled run without one ends ``Cancelled`` only once its runner has stopped
    (``runner_stopped``), so a run is never reported cancelled while ``finally`` still runs.
    ``job`` is None when the Job was not looked at; ``cancelled`` covers a Job that is gone.
    """
    if is_finished(run):
        return {}
    status = run.get("status") or {}
    result = status.get("result") or {}
    cancel = bool(run["spec"].get("cancel"))
    if result.get("phase") in TERMINAL:
        phase = result["phase"]
        error = result.get("error") or ""
        message = error or ("the run succeeded" if phase == "Succeeded" else phase)
        return finished_status(run, phase, _result_reason(phase, error), message)
    if job is not None:
        failed = _job_condition(job, "Failed")
        if failed is not None:
            if cancel:
                return finished_status(run, "Cancelled", "Cancelled", "the run was cancelled")
            reason = failed.get("reason") or "JobFailed"
            detail = failed.get("message") or reason
            return finished_status(run, "Failed", reason, f"runner Job failed: {detail}")
        if _job_condition(job, "Complete") is not None:
            return finished_status(
                run, "Failed", "NoResult", "the runner exited without recording a result"
            )
        job_status = job.get("status") or {}
        if cancel and job.get("spec", {}).get("suspend") and runner_stopped(job_status):
            # The runner ended without recording its result (killed when its grace ran out).
            return finished_status(run, "Cancelled", "Cancelled", "the run was cancelled")
        running = bool(job_status.get("active") or job_status.get("terminating"))
    else:
        running = False
    if (running or status.get("startedAt")) and status.get("phase") == "Pending":
        return {
            "phase": "Running",
            "conditions": conditions.set_condition(
                status.get("conditions"),
                SUCCEEDED,
                "Unknown",
                "Running",
                "the runner is running",
                run["metadata"].get("generation"),
            ),
        }
    return {}


def cancelled(run: dict[str, Any], job: dict[str, Any] | None) -> dict[str, Any]:
    """The status after ``spec.cancel`` was acted on; ``job`` None: the run has no Job."""
    if is_finished(run):
        return {}
    if job is None:
        return finished_status(run, "Cancelled", "Cancelled", "cancelled before the runner started")
    return summarize(run, job)
