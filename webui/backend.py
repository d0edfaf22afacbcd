"""What the web API asks of a backend, and the parts both backends share (the run store).

Two backends sit behind one API (``api/``): the **workspace** (``workspace.py``: a directory of
YAML files, SQLite, runs in this process) and the **cluster** (``cluster.py``: Kubernetes
resources read and written as the signed-in person, history from the run store). Every method
takes the ``Person`` the request is made for; the cluster backend makes Kubernetes decide what
that person may do, the workspace backend has one person (whoever holds the access token).

Errors are the project's own (``crds.errors`` and ``runners.kube.errors``): ``kube.NotFound``,
``kube.Forbidden``, ``kube.Conflict`` and ``errors.ValidationError`` are what a backend raises
for 404, 403, 409 and 422; ``api/problems.py`` turns them into problem details.

``StoreViews`` answers from the run store: run lists and details (in the API's JSON shapes),
the last run and success ratio of each Workflow, the dashboard's figures and the versions a
Workflow's runs ran.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from autoflow.crds import cron, errors
from autoflow.runners import kube
from autoflow.runners import store as store_mod

WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
RATIO_WINDOW = "7d"  # the success ratio on the workflow list
CHANGED_BY = "autoflow.dev/changed-by"  # who last created or changed a Workflow (audit)
SOURCE = "autoflow.dev/source"  # the YAML text as saved (the cluster keeps it here)


@dataclasses.dataclass(frozen=True, slots=True)
class Person:
    """Who a request is made for: a user name and groups (as Kubernetes impersonates them)."""

    user: str
    groups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RunQuery:
    workflow: str | None = None
    phase: str | None = None
    trigger: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None  # text within the run's error


def not_found(kind: str, name: str, namespace: str) -> kube.NotFound:
    return kube.NotFound(404, "NotFound", f'{kind} "{name}" not found in namespace "{namespace}"')


def conflict(kind: str, name: str, why: str) -> kube.Conflict:
    return kube.Conflict(409, "Conflict", f"{kind} {name!r}: {why}")


NEXT_FIRES = 3  # how many coming fires a Schedule's view lists


def schedule_view(
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    *,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A Schedule as the API shows it: its spec and status, and its next fires (UTC ISO
    instants, computed with the operator's own cron rules, daylight saving included; none
    while it is suspended or when its cron or time zone is not valid)."""
    coming: list[str] = []
    expression, zone = spec.get("cron"), spec.get("timezone") or "UTC"
    if not spec.get("suspend") and isinstance(expression, str) and isinstance(zone, str):
        try:
            parsed = cron.parse(expression, zone)
        except errors.AutoflowError:
            parsed = None
        if parsed is not None:
            start = now or datetime.datetime.now(datetime.UTC)
            for fire in cron.fires(parsed, start):
                coming.append(fire.isoformat().replace("+00:00", "Z"))
                if len(coming) == NEXT_FIRES:
                    break
    return {
        "name": name,
        "namespace": namespace,
        "spec": dict(spec),
        "status": dict(status) if status is not None else None,
        "nextFires": coming,
    }


def summary_json(s: store_mod.RunSummary) -> dict[str, Any]:
    return s.to_json()


def step_json(s: store_mod.StepRecord) -> dict[str, Any]:
    return {
        "step": s.step,
        "phase": s.phase,
        "attempts": s.attempts,
        "startedAt": s.started_at,
        "finishedAt": s.finished_at,
        "durationMs": s.duration_ms,
        "output": s.output,
        "error": s.error,
        "message": s.message,
    }


def detail_json(d: store_mod.RunDetail) -> dict[str, Any]:
    return {
        **summary_json(d.summary),
        "inputs": d.inputs,
        "outputs": d.outputs,
        "steps": [step_json(s) for s in d.steps],
    }


class StoreViews:
    """The run store's answers, scoped to one namespace."""

    def __init__(self, store: store_mod.Store) -> None:
        self.store = store

    async def runs_page(
        self, namespace: str, query: RunQuery, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        where = store_mod.RunFilter(
            workflow=query.workflow or None,
            namespace=namespace,
            phase=query.phase or None,
            trigger=query.trigger or None,
            since=query.since,
            until=query.until,
            error=query.q or None,
        )
        page = await self.store.list_runs(where, limit=limit, cursor=cursor)
        return [summary_json(r) for r in page.runs], page.next_cursor

    async def run_detail(self, namespace: str, run_id: str) -> store_mod.RunDetail:
        detail = await self.store.get_run(run_id)
        if detail is None or detail.summary.namespace != namespace:
            raise not_found("run", run_id, namespace)
        return detail

    async def retry_source(
        self, namespace: str, run_id: str
    ) -> tuple[store_mod.RunDetail, list[dict[str, Any]]]:
        """A failed run and its journal, for a retry (``engine.journal.reusable`` picks the
        steps it reuses); 409 unless the run failed."""
        detail = await self.run_detail(namespace, run_id)
        if detail.summary.phase != "Failed":
            raise conflict(
                "run", run_id, f"is {detail.summary.phase}; only a failed run can be retried"
            )
        return detail, await self.store.journal(run_id)

    async def workflow_runs(
        self, namespace: str, names: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Per Workflow name: lastRun, successRatio (over 7 days), runs24h."""
        now = time.time()
        # One pass over the store: the ratio over 7 days, runs24h from its hourly buckets
        # (the hour 24 hours ago counted whole).
        week = {
            s.workflow: s
            for s in await self.store.stats(
                since=now - WINDOWS[RATIO_WINDOW], until=now + 1, namespace=namespace, bucket=3600
            )
        }
        day_start = (now - 86400) // 3600 * 3600
        day = {
            name: sum(n for start, n in s.buckets if start >= day_start) for name, s in week.items()
        }
        # The newest runs of the namespace name most workflows' last run in one query; only
        # the quiet ones are looked up one by one.
        recent = await self.store.list_runs(store_mod.RunFilter(namespace=namespace), limit=200)
        latest: dict[str, store_mod.RunSummary] = {}
        for run in recent.runs:
            latest.setdefault(run.workflow, run)
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            last = latest.get(name)
            if last is None and recent.next_cursor is not None:
                page = await self.store.list_runs(
                    store_mod.RunFilter(workflow=name, namespace=namespace), limit=1
                )
                last = page.runs[0] if page.runs else None
            figures = week.get(name)
            out[name] = {
                "lastRun": None
                if last is None
                else {"runId": last.run_id, "phase": last.phase, "startedAt": last.started_at},
                "successRatio": figures.runs.success_ratio if figures else None,
                "runs24h": day.get(name, 0),
            }
        return out

    async def stats(self, namespace: str, names: Sequence[str], window: str) -> dict[str, Any]:
        """The dashboard's figures: the namespace's runs of the Workflows ``names`` only."""
        if window not in WINDOWS:
            raise errors.InputError(f"window must be one of {', '.join(WINDOWS)}; got {window!r}")
        now = time.time()
        since = now - WINDOWS[window]
        bucket = 3600.0 if window == "24h" else 86400.0
        found = await self.store.stats(
            since=since, until=now + 1, namespace=namespace, bucket=bucket
        )
        mine = [s for s in found if s.workflow in set(names)]
        count = sum(s.runs.count for s in mine)
        succeeded = sum(s.runs.succeeded for s in mine)
        failed = sum(s.runs.failed for s in mine)
        return {
            "window": window,
            "since": since,
            "until": now,
            "runs": count,
            "succeeded": succeeded,
            "failed": failed,
            "successRatio": succeeded / count if count else None,
            "workflows": [s.to_json() for s in mine],
        }

    async def versions(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [v.to_json() for v in await self.store.versions(name, namespace=namespace)]

    async def version(self, namespace: str, name: str, spec_hash: str) -> dict[str, Any]:
        known = {v.spec_hash for v in await self.store.versions(name, namespace=namespace)}
        spec = await self.store.get_spec(spec_hash) if spec_hash in known else None
        if spec is None:
            raise not_found("version", spec_hash, namespace)
        return {"specHash": spec_hash, "workflow": name, "spec": spec}


class Backend(abc.ABC):
    """One API, two worlds. ``mode`` is ``workspace`` or ``cluster``."""

    mode: str
    views: StoreViews

    @abc.abstractmethod
    async def namespaces(self, person: Person) -> list[str]: ...

    # Workflows: the YAML text is the source; ``wf`` is it checked (texts.check_workflow).
    @abc.abstractmethod
    async def list_workflows(self, person: Person, namespace: str) -> list[dict[str, Any]]: ...

    async def workflow_names(self, person: Person, namespace: str) -> list[str]:
        """The namespace's Workflows by name (what the dashboard's figures are about)."""
        return [str(w["name"]) for w in await self.list_workflows(person, namespace)]

    @abc.abstractmethod
    async def get_workflow(self, person: Person, namespace: str, name: str) -> dict[str, Any]:
        """``{name, namespace, yaml, resourceVersion, ready, spec, changedBy}``"""

    @abc.abstractmethod
    async def save_workflow(
        self,
        person: Person,
        namespace: str,
        name: str,
        text: str,
        *,
        create: bool,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Create (refused if it exists) or replace (refused when ``if_match`` is not the
        current resourceVersion) the Workflow with exactly ``text``; as ``get_workflow``."""

    @abc.abstractmethod
    async def delete_workflow(self, person: Person, namespace: str, name: str) -> None: ...

    @abc.abstractmethod
    async def integration_types(
        self, person: Person, namespace: str
    ) -> dict[str, str | None] | None:
        """The namespace's Integrations: name to connector type (for validation); None when
        the person may not list them (a step naming one is then not checked)."""

    # Runs.
    @abc.abstractmethod
    async def check_runs_access(self, person: Person, namespace: str, verb: str) -> None:
        """Raise ``kube.Forbidden`` unless the person may ``verb`` (get, list, create,
        update) the namespace's runs: history in the store is shown under the same rule."""

    async def runs_page(
        self,
        person: Person,
        namespace: str,
        query: RunQuery,
        *,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, from the run store."""
        await self.check_runs_access(person, namespace, "list")
        return await self.views.runs_page(namespace, query, limit=limit, cursor=cursor)

    async def run_detail(self, person: Person, namespace: str, run_id: str) -> dict[str, Any]:
        await self.check_runs_access(person, namespace, "get")
        return detail_json(await self.views.run_detail(namespace, run_id))

    @abc.abstractmethod
    async def start_run(
        self,
        person: Person,
        namespace: str,
        workflow: str,
        inputs: Mapping[str, Any],
        *,
        trigger: str = "api",
    ) -> str: ...

    @abc.abstractmethod
    async def cancel_run(self, person: Person, namespace: str, run_id: str) -> None: ...

    @abc.abstractmethod
    async def retry_run(self, person: Person, namespace: str, run_id: str) -> str: ...

    @abc.abstractmethod
    def events(
        self, person: Person, namespace: str, run_id: str | None, after: int | None
    ) -> AsyncIterator[dict[str, Any]]: ...

    # Integrations, schedules.
    @abc.abstractmethod
    async def list_integrations(self, person: Person, namespace: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def save_integration(
        self,
        person: Person,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        secrets: Mapping[str, str],
        *,
        create: bool,
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def test_integration(
        self, person: Person, namespace: str, name: str
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def oauth_integration(self, person: Person, namespace: str, name: str) -> Any:
        """The Integration model and its client secret, for the OAuth2 connect flow."""

    @abc.abstractmethod
    async def store_token(
        self, person: Person, namespace: str, name: str, token: Mapping[str, str]
    ) -> None: ...

    @abc.abstractmethod
    async def list_schedules(self, person: Person, namespace: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def suspend_schedule(
        self, person: Person, namespace: str, name: str, suspend: bool
    ) -> dict[str, Any]:
        """Sets the Schedule's ``spec.suspend`` (nothing else changes); its new view."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close what the backend opened."""
