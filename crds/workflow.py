"""The ``Workflow`` resource: inputs, triggers, a DAG of steps, error handling, runtime settings.

A Workflow is only a definition. The engine (``autoflow.runners``) compiles it into a DAG and
runs it; the operator validates it and writes the ``Ready`` condition here. Expressions in step
fields are kept as plain strings in these models: compiling them is the engine's job.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from autoflow.crds import meta, webhook

STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
USES_PATTERN = r"^[a-z][a-z0-9_-]*\.[A-Za-z][A-Za-z0-9_]*$"
MAX_STEPS = 1000

InputType = Literal["string", "number", "integer", "boolean", "object", "array"]


def _longer_than_zero(value: str | int) -> str | int:
    # A zero timeout passes every type check and then fails every run at its first step.
    if meta.parse_duration(value) <= 0:
        raise ValueError("a timeout must be longer than 0 (leave it out for no timeout)")
    return value


Timeout = Annotated[
    meta.Duration,
    pydantic.AfterValidator(_longer_than_zero),
    pydantic.Field(description="How long it may take: 500ms, 10s, 1m30s, 2h; longer than 0."),
]


class Input(meta.Model):
    """One declared run input."""

    type: InputType = "string"
    description: str = pydantic.Field(default="", max_length=1024)
    required: bool = False
    default: Any = pydantic.Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    enum: list[Any] | None = pydantic.Field(
        default=None,
        max_length=100,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    secret: bool = pydantic.Field(
        default=False,
        description=(
            "The value is a secret (a token, a password): the run store keeps a redaction "
            "marker instead of it, so resuming such a run from the store needs it again."
        ),
    )


class Retry(meta.Model):
    """How a failing step is tried again: exponential backoff with jitter, capped delay.

    Attempt *n* (1-based) waits ``min(maxDelay, initialDelay * multiplier**(n-1))`` before the
    next one; with ``jitter`` the wait is drawn uniformly from half that to all of it. Only
    retryable errors are retried unless ``retryOn`` is ``any``.
    """

    max_attempts: int = pydantic.Field(default=3, ge=1, le=100)
    initial_delay: meta.Duration = "1s"
    max_delay: meta.Duration = "60s"
    multiplier: float = pydantic.Field(default=2.0, ge=1.0, le=10.0)
    jitter: bool = True
    retry_on: Literal["retryable", "any"] = "retryable"


class UiPosition(meta.Model):
    """Where the visual builder draws the step; kept in the YAML so it stays the one source."""

    x: float = 0
    y: float = 0


class Step(meta.Model):
    """One node of the workflow DAG: a connector action with parameters and control fields."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.needs) || !self.needs.exists(n, n == self.id)",
                    "message": "a step cannot need itself",
                }
            ]
        }
    )

    id: str = pydantic.Field(min_length=1, max_length=63, pattern=STEP_ID_PATTERN)
    name: str | None = pydantic.Field(default=None, max_length=253)
    uses: str = pydantic.Field(
        max_length=127,
        pattern=USES_PATTERN,
        description="The action to run, as connector.action: http.request, slack.postMessage.",
    )
    with_: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        alias="with",
        description="The action's parameters; values may hold expressions.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    needs: list[Annotated[str, pydantic.Field(max_length=63)]] | None = pydantic.Field(
        default=None,
        max_length=64,
        description="Steps to finish first. Unset: the step before in the list; []: none.",
    )
    # `if` and `foreach` take two JSON types, which a structural schema cannot say: the CRD
    # leaves them untyped (preserve-unknown-fields) and these models check them.
    if_: Annotated[str, pydantic.Field(max_length=4096)] | bool | None = pydantic.Field(
        default=None,
        alias="if",
        description="An expression (or true/false); when false the step is skipped.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    foreach: Annotated[str, pydantic.Field(max_length=4096)] | list[Any] | None = pydantic.Field(
        default=None,
        description="Run the action once per item of this list (or expression giving one).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    concurrency: int | None = pydantic.Field(
        default=None, ge=1, le=100, description="Items run at once; foreach steps only."
    )
    integration: meta.Name | None = pydantic.Field(
        default=None, description="The Integration that supplies credentials and limits."
    )
    retry: Retry | None = None
    timeout: Timeout | None = None
    continue_on_error: bool = pydantic.Field(
        default=False, description="A failure of this step does not fail the run."
    )
    ui: UiPosition | None = None

    @pydantic.model_validator(mode="after")
    def _concurrency_needs_foreach(self) -> Step:
        # Not a CEL rule: the untyped `foreach` is invisible to CEL in the CRD.
        if self.concurrency is not None and self.foreach is None:
            raise ValueError("concurrency applies to foreach steps only")
        return self

    @property
    def connector(self) -> str:
        return self.uses.split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.uses.split(".", 1)[1]


StepList = Annotated[
    list[Step],
    pydantic.Field(
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    ),
]


# The trigger types live in crds/webhook.py; their names are part of this module's API too.
WebhookTrigger = webhook.WebhookTrigger
NatsTrigger = webhook.NatsTrigger


class Trigger(meta.Model):
    """One way a run starts besides manual runs and Schedules (which are their own resource)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.webhook) != has(self.nats)",
                    "message": "a trigger sets exactly one of webhook or nats",
                }
            ]
        }
    )

    webhook: WebhookTrigger | None = None
    nats: NatsTrigger | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        if (self.webhook is None) == (self.nats is None):
            raise ValueError("a trigger sets exactly one of webhook or nats")
        return self


class Toleration(meta.Model):
    """Lets runner pods schedule onto nodes with a matching taint (as in a Pod spec)."""

    key: str | None = pydantic.Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = pydantic.Field(default=None, max_length=253)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


Quantity = Annotated[str, pydantic.Field(max_length=64)]


class ResourceRequirements(meta.Model):
    """CPU and memory for the runner pod, as Kubernetes quantities (`500m`, `256Mi`)."""

    requests: dict[str, Quantity] = pydantic.Field(default_factory=dict, max_length=8)
    limits: dict[str, Quantity] = pydantic.Field(default_factory=dict, max_length=8)


class Runtime(meta.Model):
    """Where runs of this workflow execute: ``job``, one Job per WorkflowRun; ``pool``, the
    shared runner pool (``autoflow worker`` processes fed by a JetStream work queue; no
    WorkflowRun objects, the history is in the run store)."""

    mode: Literal["job", "pool"] = "job"
    image: str | None = pydantic.Field(default=None, max_length=512)
    service_account_name: meta.Name | None = None
    resources: ResourceRequirements | None = None
    node_selector: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(
        default_factory=dict, max_length=16
    )
    tolerations: list[Toleration] = pydantic.Field(default_factory=list, max_length=16)
    env: dict[str, Annotated[str, pydantic.Field(max_length=32768)]] = pydantic.Field(
        default_factory=dict, max_length=64
    )


class Concurrency(meta.Model):
    """How many runs of this workflow may be active at once, and what happens to the next one."""

    max_runs: int = pydantic.Field(default=0, ge=0, le=10000, description="0 means unlimited")
    policy: Literal["Queue", "Forbid", "Replace"] = "Queue"


class RunHistory(meta.Model):
    """How long finished WorkflowRuns of this workflow are kept; the operator deletes the rest."""

    successful_runs_limit: int | None = pydantic.Field(default=None, ge=0, le=10000)
    failed_runs_limit: int | None = pydantic.Field(default=None, ge=0, le=10000)
    ttl_seconds_after_finished: int | None = pydantic.Field(default=None, ge=0)


class Retention(meta.Model):
    """How long the run store keeps this workflow's finished runs (unset: the store's default).

    A run goes when it is older than ``days`` or beyond the newest ``maxRuns``, whichever
    comes first; unfinished runs are never expired. Applied by the periodic purge and by
    ``autoflow runs purge --expired``."""

    days: int | None = pydantic.Field(default=None, ge=1, le=36500)
    max_runs: int | None = pydantic.Field(default=None, ge=1, le=100_000_000)


class WorkflowSpec(meta.Model):
    """What the workflow takes, what starts it, the steps it runs and how it runs them."""

    description: str = pydantic.Field(default="", max_length=4096)
    inputs: dict[str, Input] = pydantic.Field(default_factory=dict, max_length=64)
    triggers: list[Trigger] = pydantic.Field(default_factory=list, max_length=16)
    steps: StepList = pydantic.Field(min_length=1)
    on_error: list[Step] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Steps run after the run failed; `error` holds the failure.",
    )
    finally_: list[Step] = pydantic.Field(
        default_factory=list,
        alias="finally",
        max_length=32,
        description="Steps run after every run, succeeded or failed.",
    )
    outputs: dict[str, Any] = pydantic.Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    timeout: Timeout | None = None
    retry: Retry | None = pydantic.Field(default=None, description="Default retry for every step.")
    concurrency: Concurrency | None = None
    runtime: Runtime | None = None
    run_history: RunHistory | None = None
    retention: Retention | None = None
    data_subject: str | None = pydantic.Field(
        default=None,
        max_length=4096,
        description=(
            "Whose personal data a run holds, as an expression over the inputs "
            "(${ inputs.email }). The run store keeps only a keyed hash of it, so "
            "`autoflow runs erase --subject VALUE` can remove every run about that person."
        ),
    )


class WorkflowStatus(meta.Model):
    """Written by the operator: validation result and a summary of the runs."""

    observed_generation: int | None = None
    conditions: meta.Conditions
    last_run: str | None = pydantic.Field(default=None, max_length=253)
    last_run_phase: str | None = pydantic.Field(default=None, max_length=32)
    runs_total: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    # Pool-mode Workflows (no WorkflowRun objects): written by the operator from the run
    # store every few seconds, only when a figure changed. ``lastRun`` is then a run id.
    last_run_time: str | None = pydantic.Field(default=None, max_length=64)
    runs_last_hour: int | None = None
    failures_last_hour: int | None = None


class Workflow(meta.Resource):
    """A workflow definition."""

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec
    status: WorkflowStatus | None = None

    def all_steps(self) -> list[Step]:
        return [*self.spec.steps, *self.spec.on_error, *self.spec.finally_]
