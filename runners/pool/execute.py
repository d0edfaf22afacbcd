"""One run of the pool, from its id: what the in-process launcher and ``autoflow worker`` share.

A run was recorded by ``Store.start_run`` (phase Pending, its inputs, the spec it runs under
its hash). ``Executor.execute(run_id)`` claims it (Pending → Running), reads its journal from
the store (the header, and whatever steps an earlier attempt recorded), finds the plan for the
header's spec hash (compiled once per hash; a run started elsewhere is compiled from the spec
the store holds: a worker needs no access to Workflow objects), and runs the engine with the
store as the journal. A resumed run goes on after its last recorded step, never repeating one.
Every transition goes to ``RunEvents`` as it is journaled.

A run whose spec cannot be had (purged, never sent) or no longer compiles ends Failed with
the reason, recorded like any end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.crds import errors, workflow
from autoflow.runners import engine, store
from autoflow.runners.access import limits
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine import journal as journal_mod
from autoflow.runners.local import run as local_run
from autoflow.runners.pool import Outcome, events
from autoflow.runners.store import journal as store_journal

log = logging.getLogger("autoflow.pool")

IntegrationsFor = Callable[[str], engine.IntegrationProvider | None]
FINAL = ("Succeeded", "Failed", "Cancelled")


class EventJournal:
    """A store journal that also publishes each transition it records (the run's end once
    the store holds it: whoever hears of it may read the outcome from the store)."""

    def __init__(
        self, inner: store_journal.StoreJournal, hub: events.RunEvents | None, header: Any
    ) -> None:
        self.inner = inner
        self._hub = hub
        self._run_id = str(header["runId"])
        self._namespace = str(header.get("namespace") or "")
        self._workflow = str(header.get("workflow") or "")
        self._end: str | None = None

    def read(self) -> list[dict[str, Any]]:
        return self.inner.read()

    def append(self, record: dict[str, Any]) -> None:
        self.inner.append(record)
        if self._hub is None:
            return
        kind = record.get("t")
        if kind in ("start", "retry", "step") and "item" not in record:
            phase = {"start": "Running", "retry": "Retrying"}.get(kind) or record["phase"]
            self._publish("step", phase, record["step"])
        elif kind == "end":
            self._end = str(record["phase"])  # told once the store holds it (flush)

    def _publish(self, kind: str, phase: str, step: str | None) -> None:
        assert self._hub is not None
        self._hub.publish(
            run_id=self._run_id,
            namespace=self._namespace,
            workflow=self._workflow,
            kind=kind,
            phase=phase,
            step=step,
        )

    async def flush(self) -> None:
        await self.inner.flush()
        if self._end is not None and self._hub is not None:
            phase, self._end = self._end, None
            self._publish("end", phase, None)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


class Executor:
    """Runs pool runs by id. ``integrations(namespace)`` gives the provider of a namespace's
    Integrations (None: the run's steps that name one fail saying so)."""

    def __init__(
        self,
        store_: store.Store,
        integrations: IntegrationsFor,
        *,
        hub: events.RunEvents | None = None,
        environ: Mapping[str, str] | None = None,
        limiter: limits.Limiter | None = None,
        registry: registry_mod.Registry | None = None,
    ) -> None:
        self.store = store_
        self.integrations = integrations
        self.hub = hub
        self.environ = dict(environ or {})
        self.limiter = limiter or limits.LocalLimiter()
        self.registry = registry
        self._plans: dict[str, plan_mod.Plan] = {}
        self._compiling: dict[str, asyncio.Lock] = {}
        self.runs: dict[str, engine.Run] = {}  # in flight here

    def remember(self, compiled: plan_mod.Plan) -> str:
        """A plan compiled by the launcher; returns its spec hash."""
        digest = engine.spec_hash(compiled)
        self._plans.setdefault(digest, compiled)
        return digest

    def compile(self, wf: workflow.Workflow) -> plan_mod.Plan:
        where = errors.Where(resource=wf.ref)
        if self.registry is not None:
            return plan_mod.compile_workflow(wf, self.registry, where=where)
        return plan_mod.compile_workflow(wf, where=where)

    async def plan_for(self, header: Mapping[str, Any]) -> plan_mod.Plan:
        digest = str(header.get("specHash") or "")
        found = self._plans.get(digest)
        if found is not None:
            return found
        async with self._compiling.setdefault(digest, asyncio.Lock()):
            found = self._plans.get(digest)
            if found is not None:
                return found
            spec = await self.store.get_spec(digest) if digest else None
            if spec is None:
                raise errors.RunError(
                    f"the run store holds no spec {digest!r} for run {header.get('runId')!r} "
                    f"of workflow {header.get('workflow')!r}: it cannot be run"
                )
            wf = workflow.Workflow.model_validate(
                {
                    "kind": "Workflow",
                    "metadata": {
                        "name": header.get("workflow"),
                        "namespace": header.get("namespace") or None,
                    },
                    "spec": spec,
                }
            )
            compiled = self.compile(wf)
            self._plans[engine.spec_hash(compiled)] = compiled
            self._plans[digest] = compiled
            return compiled

    async def fail(self, run_id: str, reason: str) -> None:
        """Ends the run Failed with ``reason`` (nothing else of it runs)."""
        await self.store.claim_run(run_id)
        await self.store.record(
            run_id,
            [{"t": "end", "phase": "Failed", "outputs": None, "error": reason, "at": time.time()}],
        )

    async def execute(
        self, run_id: str, records: list[dict[str, Any]] | None = None
    ) -> Outcome | None:
        """Runs (or resumes, or reads the result of) the run; None: no such run. Raises
        ``engine.RunInterrupted`` when ``interrupt`` stopped it (its steps so far are
        recorded; running it again resumes). ``records``: the journal of a run the caller
        recorded Running itself (no claim, nothing to read)."""
        if records is None:
            records = await self.store.claim_run(run_id)
        if records is None:
            return None
        state = journal_mod.replay(records)
        if state.header is None:
            return None
        if state.end is not None:
            return _outcome(run_id, state.end)
        header = state.header
        namespace = str(header.get("namespace") or "")
        if header.get("sealedInputs"):
            reason = (
                f"run {run_id!r}: its secret inputs are sealed in the run store and this "
                f"worker cannot open them ({header['sealedInputs']}): give every launcher and "
                f"worker the same {store.SUBJECT_KEY_ENV}"
            )
            await self.fail(run_id, reason)
            return Outcome(run_id, "Failed", {}, reason)
        try:
            compiled = await self.plan_for(header)
        except errors.AutoflowError as exc:
            await self.fail(run_id, exc.message)
            return Outcome(run_id, "Failed", {}, exc.message)
        inner = store_journal.StoreJournal(self.store, run_id=run_id, records=records)
        jr = EventJournal(inner, self.hub, header)
        env = local_run.expression_env(compiled.workflow, self.environ)
        run = engine.Run(
            compiled,
            run_id=run_id,
            inputs=header.get("inputs") or {},
            journal=jr,
            integrations=self.integrations(namespace),
            env=env,
            run_info={"namespace": namespace},
            limiter=self.limiter,
        )
        if self.hub is not None:
            self.hub.publish(
                run_id=run_id,
                namespace=namespace,
                workflow=str(header.get("workflow") or ""),
                kind="run",
                phase="Running",
            )
        self.runs[run_id] = run
        try:
            result = await run.execute()
        finally:
            self.runs.pop(run_id, None)
            await jr.aclose()
        return Outcome(run_id, result.phase, dict(result.outputs or {}), result.error)


def _outcome(run_id: str, end: Mapping[str, Any]) -> Outcome:
    outputs = end.get("outputs")
    mapping = dict(outputs) if isinstance(outputs, Mapping) else {}
    return Outcome(run_id, str(end["phase"]), mapping, end.get("error"))
