"""The run store as a run's journal (``runners.engine.journal.Journal``): resume from the store.

The engine appends records synchronously and awaits ``flush`` after each record something
depends on (run header, step, foreach item, end). Here ``append`` only queues: attempt
records (``start``, ``retry``), which nothing awaits, are sent at once in the background so
the history shows a step in flight; everything else goes with the next ``flush``, which
returns only when the store holds every queued record. Writes that fail because the store
cannot be reached are retried with exponential backoff (0.05 s doubling to 5 s) for
``retry_for`` seconds; until then ``flush`` does not return, so the run never goes past a
step whose result is not recorded. After that the run stops with the store's error and can
be resumed later: nothing after the last recorded step happened.

``open_local`` is ``autoflow run --store URL``: the newest unfinished run of the workflow that
``autoflow run`` started (trigger ``cli``) is resumed, else a new run starts; runs started
elsewhere (the runner pool, a schedule) are never taken over from a laptop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from autoflow.runners import store

log = logging.getLogger("autoflow.store")

FIRST_DELAY, MAX_DELAY = 0.05, 5.0
RETRY_FOR = 300.0  # seconds a write is retried before the run stops
LOCAL_TRIGGER = "cli"  # runs started by autoflow run; only those are resumed by it


class StoreJournal:
    """A run's journal in a store. Give an open ``store`` (shared by many runs, closed by its
    owner) or a ``url`` (opened on first write on the run's loop, closed by ``aclose``).

    ``context`` is added to the run header the engine writes: ``namespace``, ``trigger``,
    ``startedBy``, and the hooks a runner should fill: ``spec`` (the Workflow's
    ``spec.dump()``, so the store keeps the version the run ran) and ``subject`` (the value
    of the Workflow's ``dataSubject`` expression, stored only as a keyed hash) and
    ``secretInputs`` (the names of inputs declared ``secret: true``: stored redacted)."""

    def __init__(
        self,
        store_: store.Store | None = None,
        *,
        url: str | None = None,
        run_id: str | None = None,
        records: list[dict[str, Any]] | None = None,
        context: Mapping[str, Any] | None = None,
        retry_for: float = RETRY_FOR,
        max_payload: int = store.DEFAULT_MAX_PAYLOAD,
    ) -> None:
        if store_ is None and url is None:
            raise ValueError("a StoreJournal needs a store or its URL")
        self._store = store_
        self._owns_store = store_ is None
        self._url = url
        self.run_id = run_id
        self._loaded = list(records or [])
        self._context = dict(context or {})  # namespace, trigger, startedBy for the header
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._error: store.StoreError | None = None
        self.retry_for = retry_for
        self.max_payload = max_payload

    def about(self, subject: str) -> None:
        """The run's data subject (the Workflow's ``dataSubject`` evaluated), for its header:
        the store keeps only a keyed hash of it."""
        self._context["subject"] = subject

    @classmethod
    async def load(cls, store_: store.Store, run_id: str, **kwargs: Any) -> StoreJournal:
        """The journal of ``run_id`` as the store holds it (empty for a new run)."""
        return cls(store_, run_id=run_id, records=await store_.journal(run_id), **kwargs)

    def read(self) -> list[dict[str, Any]]:
        return list(self._loaded)

    def append(self, record: dict[str, Any]) -> None:
        rec = dict(record)
        kind = rec.get("t")
        if kind == "run":
            rec = {**self._context, **rec}
            self.run_id = str(rec["runId"])
        elif kind in ("start", "retry", "item"):
            rec.setdefault("at", time.time())  # the engine's records carry no time of their own
        self._pending.append(rec)
        if kind in ("start", "retry"):
            self._kick()

    async def flush(self) -> None:
        while True:
            if self._task is not None and not self._task.done():
                # Shielded: a cancelled run must not cancel a write already on its way.
                await asyncio.shield(self._task)
                continue
            if self._error is not None:
                raise self._error
            if not self._pending:
                return
            self._kick()

    def close(self) -> None:
        """The engine's last call; the store itself is closed by ``aclose`` (async)."""

    async def aclose(self) -> None:
        try:
            if self._pending or self._task is not None:
                await self.flush()
        finally:
            if self._owns_store and self._store is not None:
                await self._store.aclose()
                self._store = None

    # -- writing ------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        delay, deadline = FIRST_DELAY, None
        while self._pending:
            batch = list(self._pending)
            try:
                target = await self._open()
                assert self.run_id is not None, "the run header is the first record"
                await target.record(self.run_id, batch)
            except store.StoreUnavailable as exc:
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.retry_for
                if now >= deadline:
                    self._error = store.StoreUnavailable(
                        f"{exc.message}; gave up after {self.retry_for:g}s (the run can be "
                        "resumed once the store is back)"
                    )
                    return
                log.warning(
                    "run store write failed, retrying in %.2fs: %s",
                    delay,
                    exc.message,
                    extra={"run_id": self.run_id},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
                continue
            except store.StoreError as exc:
                self._error = exc
                return
            del self._pending[: len(batch)]  # appended meanwhile: kept for the next round
            delay, deadline = FIRST_DELAY, None

    async def _open(self) -> store.Store:
        if self._store is None:
            assert self._url is not None
            self._store = await store.open_store(self._url, max_payload=self.max_payload)
        return self._store


def open_local(
    url: str,
    workflow: str,
    spec_hash: str,
    *,
    spec: Mapping[str, Any] | None = None,
    subject: str | None = None,
    secret_inputs: list[str] | None = None,
) -> tuple[StoreJournal, str | None]:
    """For ``autoflow run --store URL`` (outside any event loop): the journal, and the run id
    to resume (None: a new run). An unfinished run of another definition is refused here,
    before anything runs, with the command that removes it. ``spec`` (the Workflow's
    ``spec.dump()``), ``subject`` (its ``dataSubject`` evaluated) and ``secret_inputs`` (the
    names of its inputs declared secret, stored redacted) go into the header."""

    async def look() -> tuple[str | None, list[dict[str, Any]]]:
        found = await store.open_store(url)
        try:
            run_id = await found.unfinished(workflow, trigger=LOCAL_TRIGGER)
            return run_id, (await found.journal(run_id) if run_id else [])
        finally:
            await found.aclose()

    run_id, records = asyncio.run(look())
    if records and records[0].get("specHash") != spec_hash:
        where = store.display_url(url)
        raise store.StoreError(
            f"the run store at {where} holds unfinished run {run_id!r} of a different "
            f"definition of workflow {workflow!r}; resume it with the workflow it started "
            f"with, or remove it: autoflow runs purge --run {run_id} --store URL"
        )
    context: dict[str, Any] = {"trigger": LOCAL_TRIGGER, "startedBy": os.environ.get("USER", "")}
    if spec is not None:
        context["spec"] = dict(spec)
    if subject is not None:
        context["subject"] = subject
    if secret_inputs:
        context["secretInputs"] = list(secret_inputs)
    return StoreJournal(url=url, run_id=run_id, records=records, context=context), run_id
