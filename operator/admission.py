"""Admitting runs under their Workflow's ``spec.concurrency``: the I/O around ``concurrency``.

Only runs whose Workflow sets ``concurrency.maxRuns`` come here; the others are dispatched
as before, without a list or a lock. Two ways in::

    start(run, limit, start)     # a new run: list its Workflow's runs, decide, cancel the
                                 # runs it replaces, write its start status under the decision
    wake(namespace, workflow)    # admit the queued runs that fit now, then create their Jobs
    changed(namespace, workflow) # a run finished or went: wake, if the Workflow has a queue

**Races.** Two runs created at the same moment must not both take the last slot. Runs are
admitted in creation order, and a run counts every older run that may still run against its
limit, whatever its state (``concurrency``), so of two runs deciding at once the newer always
counts the older. And the operator is one process (kopf's peering keeps a single active operator),
so an asyncio lock per Workflow makes each decision one step: under it a decision lists the
Workflow's runs (a list is a consistent read: it sees every status written before it) and
writes its outcome before the next decision lists. The lock is also what keeps a wake from
being lost: a run that finishes while another is being queued wakes a pass, which waits for
the lock and so finds the other queued. The Job is created after the lock is released: the
status says already that the run holds its slot.

**Listing.** A Workflow's runs carry the label ``autoflow.dev/workflow``, which the operator
adds when it first handles a run; the runs it has not handled yet (no label, few) are listed
too, and first, so that a run labelled between the two lists is in one of them.

**Waking.** A Workflow's queue is looked at by one pass at a time, in a task of its own;
wakes during a pass make one more pass after it. A pass that fails (an API error, a Job
blocked by an earlier run's) is tried again after the handler backoff, including the Jobs of
the runs it had admitted. Which Workflows have queued runs is kept in memory; after a restart
the resume of each queued run wakes its Workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from autoflow.crds import meta
from autoflow.operator import concurrency, events, posting, runs
from autoflow.runners import kube

log = logging.getLogger("autoflow.operator")

Key = tuple[str, str]  # (namespace, workflow name)
Compute = Callable[[meta.JSONDict], meta.JSONDict]
Write = Callable[[meta.JSONDict, Compute], Awaitable[meta.JSONDict | None]]
Launch = Callable[[meta.JSONDict], Awaitable[None]]


class Admissions:
    """The operator's admission of runs: locks, the Workflows with queues, wake tasks.

    ``write(run, compute)`` writes a run status guarded by its resourceVersion (the
    handlers' ``_transition``); ``launch(run)`` creates an admitted run's access and Job.
    """

    def __init__(self, client: kube.Client, write: Write, launch: Launch, backoff: float) -> None:
        self._client = client
        self._write = write
        self._launch = launch
        self._backoff = backoff
        self._locks: dict[Key, asyncio.Lock] = {}
        self._waiting: set[Key] = set()  # Workflows that may have queued runs
        self._again: set[Key] = set()  # Workflows to make a (further) pass over
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._unlaunched: dict[Key, set[str]] = {}  # uids admitted by a pass, no Job yet
        self._reported: set[str] = set()  # uids whose failed Job creation has an Event

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def runs_of(self, namespace: str, wf_name: str) -> list[meta.JSONDict]:
        fresh = await self._client.list(
            kube.paths.run(namespace, selector=f"!{runs.LABEL_WORKFLOW}")
        )
        label = f"{runs.LABEL_WORKFLOW}={runs.label_value(wf_name)}"
        labelled = await self._client.list(kube.paths.run(namespace, selector=label))
        return concurrency.runs_of([*fresh, *labelled], wf_name)

    async def start(
        self, run: meta.JSONDict, limit: concurrency.Limit, start: Compute
    ) -> meta.JSONDict | None:
        """Write ``start(run)`` (a Pending start status) under the run's admission decision;
        the run as written, or None when there was nothing to write."""
        namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
        key = (namespace, runs.workflow_name(run))
        async with self._lock(key):
            # From here on a run of this Workflow that finishes wakes the queue.
            self._waiting.add(key)
            listed = await self.runs_of(*key)
            decision = concurrency.decide(run, listed, limit)
            # Before this run's own status: if a cancel fails, kopf retries the whole start.
            await self._replace(namespace, decision.replace, name)

            def compute(current: meta.JSONDict) -> meta.JSONDict:
                change = start(current)
                return concurrency.apply(
                    current, change, concurrency.decide(current, listed, limit)
                )

            return await self._write(run, compute)

    async def _replace(self, namespace: str, names: tuple[str, ...], by: str) -> None:
        body = {
            "metadata": {"annotations": {runs.ANNOTATION_REPLACED_BY: by}},
            "spec": {"cancel": True},
        }
        for name in names:
            try:
                await self._client.patch(kube.paths.run(namespace, name), body)
            except kube.NotFound:
                continue
            log.info("run %s/%s cancelled: run %s replaces it", namespace, name, by)

    # -- waking the queue ----------------------------------------------------------------

    def changed(self, namespace: str, wf_name: str) -> None:
        """A run of the Workflow finished or went: its queue may move."""
        if (namespace, wf_name) in self._waiting:
            self.wake(namespace, wf_name)

    def wake(self, namespace: str, wf_name: str) -> None:
        """Admit what fits of the Workflow's queue, soon (after the pass in progress, if any)."""
        key = (namespace, wf_name)
        self._waiting.add(key)
        self._again.add(key)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._passes(key), name=f"admit {key}")

    async def _passes(self, key: Key) -> None:
        try:
            while key in self._again:
                self._again.discard(key)
                try:
                    done = await self._pass(key)
                except Exception:
                    log.exception("admitting the queued runs of workflow %s/%s failed", *key)
                    done = False
                if not done:
                    self._again.add(key)
                    await asyncio.sleep(self._backoff)
        finally:
            del self._tasks[key]

    async def _pass(self, key: Key) -> bool:
        """Admit the queued runs that fit and create their Jobs (and the Jobs an earlier pass
        failed to create); False when a Job could not be created."""
        unlaunched = self._unlaunched.setdefault(key, set())
        async with self._lock(key):
            listed = await self.runs_of(*key)
            admitted = [
                r
                for r in listed
                if r["metadata"]["uid"] in unlaunched and concurrency.holds_slot(r)
            ]
            unlaunched.clear()
            unlaunched.update(r["metadata"]["uid"] for r in admitted)
            for run in concurrency.admissible(listed):
                written = await self._write(run, concurrency.admit)
                if written is not None:
                    unlaunched.add(written["metadata"]["uid"])
                    admitted.append(written)
            if not any(concurrency.is_queued(r) and concurrency.waits(r) for r in listed):
                self._waiting.discard(key)
        for run in admitted:
            uid = run["metadata"]["uid"]
            try:
                await self._launch(run)
            except Exception as exc:
                log.warning(
                    "run %s: its Job could not be created: %s", run["metadata"]["name"], exc
                )
                if uid not in self._reported:  # once, not at every retry
                    self._reported.add(uid)
                    posting.post(run, events.Event("Warning", "Blocked", str(exc)))
                continue
            unlaunched.discard(uid)
            self._reported.discard(uid)
        return not unlaunched

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
