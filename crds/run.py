"""The ``WorkflowRun`` resource: one execution of a Workflow with inputs, and what happened.

The spec says what to run; the status is a bounded summary (phase, per-step state, timings,
small outputs). Large outputs and full payloads never live here (DESIGN §2): the runner
truncates them with a marker before writing, and the run store keeps the whole thing.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

import pydantic

from autoflow.crds import meta

RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
StepPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]
# How the runner's error starts when it cannot honour ``spec.retryOf`` (reason RetryRefused).
RETRY_REFUSED = "cannot retry run"


class WorkflowRunSpec(meta.Model):
    """Which workflow to run and with what inputs; set `cancel` to stop the run; `retryOf`
    makes it a retry of a failed run from its failed step."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.workflowRef == oldSelf.workflowRef",
                    "message": "workflowRef is immutable",
                    "fieldPath": ".workflowRef",
                },
                {
                    "rule": "!has(oldSelf.inputs)"
                    " || (has(self.inputs) && self.inputs == oldSelf.inputs)",
                    "message": "inputs are immutable",
                    "fieldPath": ".inputs",
                },
                {
                    "rule": "has(self.retryOf) == has(oldSelf.retryOf)"
                    " && (!has(self.retryOf) || self.retryOf == oldSelf.retryOf)",
                    "message": "retryOf is immutable",
                    "fieldPath": ".retryOf",
                },
                {
                    # has(): the CRD applies no default, so an unset cancel is absent
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel"
                    " || (has(self.cancel) && self.cancel)",
                    "message": "a cancelled run cannot be un-cancelled",
                    "fieldPath": ".cancel",
                },
            ]
        }
    )

    workflow_ref: meta.LocalObjectReference
    inputs: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        max_length=64,  # as many as a Workflow can declare; bounds the immutability rule's cost
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    cancel: bool = False
    retry_of: str | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Retry from the failed step: the run id (in the run store: the "
        "WorkflowRun's uid) of a failed run of the same Workflow, with the same spec and "
        "inputs, whose succeeded steps this run takes as done, with their outputs. Needs the "
        "run store.",
    )


class StepStatus(meta.Model):
    """The journal entry of one step, as the status shows it."""

    id: str = pydantic.Field(max_length=63)
    phase: StepPhase
    attempts: int = 0
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    message: str = pydantic.Field(default="", max_length=2048)
    output: Any = pydantic.Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    output_truncated: bool = False


class RunnerResult(meta.Model):
    """The runner's own account of the run, written once when the run ends."""

    phase: Literal["Succeeded", "Failed", "Cancelled"]
    error: str = pydantic.Field(default="", max_length=4096)
    run_id: str = pydantic.Field(default="", max_length=253)


class WorkflowRunStatus(meta.Model):
    """Written by the runner and the operator: a bounded summary of what happened."""

    observed_generation: int | None = None
    conditions: meta.Conditions
    phase: RunPhase | None = None
    message: str = pydantic.Field(default="", max_length=2048)
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    workflow_generation: int | None = None
    job_name: str | None = pydantic.Field(default=None, max_length=253)
    steps: list[StepStatus] = pydantic.Field(
        default_factory=list,
        max_length=1000,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )
    outputs: Any = pydantic.Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    result: RunnerResult | None = pydantic.Field(
        default=None, description="What the runner concluded; the operator derives phase from it."
    )
    workflow_snapshot: dict[str, Any] | None = pydantic.Field(
        default=None,
        description="The Workflow spec as it was when the run started; the run uses only this.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class WorkflowRun(meta.Resource):
    """One execution of a Workflow."""

    kind: Literal["WorkflowRun"] = "WorkflowRun"
    spec: WorkflowRunSpec
    status: WorkflowRunStatus | None = None
