"""WorkflowRun reconciliation as pure functions over plain dicts.

The path of a run reads like its sentence::

    start   = start_status(run, workflow)        # snapshot the spec, check inputs → Pending
    desired = render_job(run, settings)          # the runner Job, from the snapshot only
    apply(desired)                               # (I/O, in handlers) create; 409 means done
    status  = summarize(run, job)                # Job state + the runner's result → phase

The phase is only a summary of the ``Succeeded`` condition (Unknown while Pending or
Running, True when the run succeeded, False when it failed or was cancelled).
"""

from __future__ import annotations

import hashlib
from typing import Any

from autoflow.crds import conditions, errors, meta, workflow
from autoflow.operator import settings as settings_mod
from autoflow.runners import inputs as inputs_mod

SUCCEEDED = "Succeeded"
LABEL_RUN_UID = "autoflow.dev/run-uid"
LABEL_WORKFLOW = "autoflow.dev/workflow"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
# A run's Job may outlive the workflow timeout by this much (pod start, onError, finally).
DEADLINE_GRACE_SECONDS = 120


def phase_of(run: dict[str, Any]) -> str | None:
    phase: str | None = (run.get("status") or {}).get("phase")
    return phase


def is_finished(run: dict[str, Any]) -> bool:
    return phase_of(run) in TERMINAL


def job_name(run: dict[str, Any]) -> str:
    """A Job name derived from the run: the run's own name when it fits in 63 characters."""
    name: str = run["metadata"]["name"]
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(run["metadata"].get("uid", name).encode()).hexdigest()[:10]
    return f"{name[:52].rstrip('-.')}-{digest}"


def _finished(
    run: dict[str, Any], phase: str, reason: str, message: str, at: str | None = None
) -> dict[str, Any]:
    status = run.get("status") or {}
    value = {"Succeeded": "True"}.get(phase, "False")
    return {
        "phase": phase,
        "message": message[:2048],
        "finishedAt": status.get("finishedAt") or at or conditions.now(),
        "conditions": conditions.set_condition(
            status.get("conditions"),
            SUCCEEDED,
            value,
            reason,
            message,
            run["metadata"].get("generation"),
            at,
        ),
    }


def start_status(
    run: dict[str, Any], wf: dict[str, Any] | None, problems: list[str]
) -> dict[str, Any]:
    """Status for a new run: its snapshot and Pending, or Failed with the reason it cannot run."""
    if wf is None:
        ref = run["spec"]["workflowRef"]["name"]
        return _finished(run, "Failed", "WorkflowNotFound", f"Workflow {ref!r} does not exist")
    if problems:
        return _finished(run, "Failed", "InvalidWorkflow", "; ".join(problems))
    model = workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": wf["metadata"]["name"]}, "spec": wf["spec"]}
    )
    try:
        inputs_mod.resolve(model.spec.inputs, run["spec"].get("inputs") or {}, errors.Where())
    except errors.InputError as exc:
        return _finished(run, "Failed", "InvalidInputs", str(exc))
    status = run.get("status") or {}
    return {
        "phase": "Pending",
        "workflowSnapshot": wf["spec"],
        "workflowGeneration": wf["metadata"].get("generation"),
        "conditions": conditions.set_condition(
            status.get("conditions"),
            SUCCEEDED,
            "Unknown",
            "Pending",
            "waiting for the runner to start",
            run["metadata"].get("generation"),
        ),
    }


def render_job(run: dict[str, Any], settings: settings_mod.Settings) -> dict[str, Any]:
    """The runner Job of a run, from the run's snapshot of the Workflow spec."""
    meta_ = run["metadata"]
    snapshot = workflow.WorkflowSpec.model_validate((run.get("status") or {})["workflowSnapshot"])
    runtime = snapshot.runtime or workflow.Runtime()
    labels = {
        LABEL_MANAGED: "autoflow",
        LABEL_RUN_UID: meta_["uid"],
        LABEL_WORKFLOW: run["spec"]["workflowRef"]["name"][:63],
    }
    env = [
        {"name": "AUTOFLOW_RUN_NAMESPACE", "value": meta_["namespace"]},
        {"name": "AUTOFLOW_RUN_NAME", "value": meta_["name"]},
    ]
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
        "serviceAccountName": runtime.service_account_name or settings.runner_service_account,
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
        "template": {"metadata": {"labels": labels}, "spec": pod},
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
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": meta.API_VERSION,
                    "kind": "WorkflowRun",
                    "name": meta_["name"],
                    "uid": meta_["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    cond = conditions.get((job.get("status") or {}).get("conditions"), type_)
    return cond if cond and cond.get("status") == "True" else None


def summarize(run: dict[str, Any], job: dict[str, Any] | None) -> dict[str, Any]:
    """The run status implied by its Job and the runner's result; {} when nothing changes."""
    if is_finished(run):
        return {}
    status = run.get("status") or {}
    result = status.get("result") or {}
    cancel = bool(run["spec"].get("cancel"))
    if result.get("phase") in TERMINAL:
        phase = result["phase"]
        reason = {"Succeeded": "Succeeded", "Cancelled": "Cancelled"}.get(phase, "StepFailed")
        message = result.get("error") or ("the run succeeded" if phase == "Succeeded" else phase)
        return _finished(run, phase, reason, message)
    if job is None:
        if cancel:
            return _finished(run, "Cancelled", "Cancelled", "cancelled before the runner started")
        return {}
    failed = _job_condition(job, "Failed")
    if failed is not None:
        if cancel:
            return _finished(run, "Cancelled", "Cancelled", "the run was cancelled")
        reason = failed.get("reason") or "JobFailed"
        return _finished(
            run, "Failed", reason, f"runner Job failed: {failed.get('message') or reason}"
        )
    if _job_condition(job, "Complete") is not None:
        return _finished(run, "Failed", "NoResult", "the runner exited without recording a result")
    job_status = job.get("status") or {}
    if cancel and job.get("spec", {}).get("suspend") and not job_status.get("active"):
        return _finished(run, "Cancelled", "Cancelled", "the run was cancelled")
    if (job_status.get("active") or status.get("startedAt")) and status.get("phase") != "Running":
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
