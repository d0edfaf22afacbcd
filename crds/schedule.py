"""The ``Schedule`` resource: cron in an IANA timezone that starts WorkflowRuns.

Each fire creates a WorkflowRun whose name is derived from (schedule uid, fire time), so one
fire can never produce two runs, whatever happens to the operator.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic

from autoflow.crds import meta


class CatchUp(meta.Model):
    """What to do with fires missed while the operator was down or the schedule suspended."""

    policy: Literal["Skip", "Latest", "All"] = pydantic.Field(
        default="Skip",
        description="Skip: run only the newest fire, if at most startingDeadlineSeconds late"
        " (60 when unset). Latest: the newest missed fire within the deadline (any age when"
        " unset). All: every missed fire within the deadline, the newest maxRuns of them.",
    )
    max_runs: int = pydantic.Field(
        default=10, ge=1, le=1000, description="At most this many late runs for policy All."
    )


class ScheduleSpec(meta.Model):
    """When to fire (cron in a timezone), which workflow to run, and what to do with overlaps."""

    cron: str = pydantic.Field(
        min_length=1,
        max_length=256,
        description="Five fields (minute hour day month weekday), six with seconds first"
        " (second minute hour day month weekday), or an alias such as @daily.",
    )
    timezone: str = pydantic.Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone the cron is read in, such as Europe/Berlin.",
    )
    workflow_ref: meta.LocalObjectReference
    inputs: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        max_length=64,  # as many as a Workflow can declare; bounds the immutability rule's cost
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = pydantic.Field(
        default="Allow",
        description="While a run of this Schedule is active, a fire runs beside it (Allow),"
        " is skipped (Forbid), or cancels it and runs (Replace).",
    )
    catch_up: CatchUp | None = None
    starting_deadline_seconds: int | None = pydantic.Field(
        default=None, ge=0, description="How late a fire may still run, in seconds."
    )
    suspend: bool = pydantic.Field(
        default=False, description="Nothing fires; on resume, catchUp decides about missed fires."
    )
    successful_runs_history_limit: int = pydantic.Field(default=3, ge=0, le=1000)
    failed_runs_history_limit: int = pydantic.Field(default=1, ge=0, le=1000)


class ScheduleStatus(meta.Model):
    """Written by the operator: the last and next fire, and the runs still active."""

    observed_generation: int | None = None
    conditions: meta.Conditions
    last_schedule_time: datetime.datetime | None = None
    next_schedule_time: datetime.datetime | None = None
    active: list[Annotated[str, pydantic.Field(max_length=253)]] = pydantic.Field(
        default_factory=list, max_length=1000
    )


class Schedule(meta.Resource):
    """Cron in an IANA timezone that starts WorkflowRuns of one Workflow."""

    kind: Literal["Schedule"] = "Schedule"
    spec: ScheduleSpec
    status: ScheduleStatus | None = None
