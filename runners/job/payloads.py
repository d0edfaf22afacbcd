"""A Job-mode run's journal in two places: the WorkflowRun status and the run store.

``Tee`` hands every record the engine journals to the ``StatusJournal`` (the summary, and
the source of truth a resumed pod reads) and to a ``StoreJournal`` (full step payloads,
``AUTOFLOW_STORE_URL``, from a Secret the kubelet resolves). The status comes first: a flush
returns once the status holds the record, then the store write is tried. A store that
cannot be reached is retried with backoff for ``STORE_RETRY_SECONDS``; after that the
failure is logged and the store is left alone for the rest of the pod's life, and the run
goes on: a store outage costs full payloads (the operator still archives the summary from
the status when the run finishes), never the run. So the status journal, not the store,
decides what a resumed pod skips::

    engine ─► Tee.append ─► StatusJournal (status: summary, truncated markers)
                        └─► StoreJournal  (store: full payloads; best effort)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from autoflow.runners import store
from autoflow.runners.job import journal
from autoflow.runners.store import journal as store_journal

STORE_ENV = "AUTOFLOW_STORE_URL"
STORE_RETRY_SECONDS = 30.0
JOB_TRIGGER = "job"

log = logging.getLogger("autoflow.runner")


class Tee:
    """The engine's journal: ``status`` decides, ``copy`` (the store) follows."""

    def __init__(
        self,
        status: journal.StatusJournal,
        copy: store_journal.StoreJournal,
    ) -> None:
        self._status = status
        self._copy: store_journal.StoreJournal | None = copy
        # Closed by ``aclose`` even after it failed.
        self._closing: store_journal.StoreJournal | None = copy
        self.store_errors = 0

    def read(self) -> list[dict[str, Any]]:
        return self._status.read()

    def append(self, record: dict[str, Any]) -> None:
        self._status.append(record)
        if self._copy is not None:
            self._copy.append(record)

    async def flush(self) -> None:
        await self._status.flush()
        if self._copy is None:
            return
        try:
            await self._copy.flush()
        except store.StoreError as exc:
            self.store_errors += 1
            log.error(
                "run store write failed, going on without it (the status keeps the run; "
                "the operator archives its summary): %s",
                exc.message,
                extra={"run_id": self._copy.run_id},
            )
            self._copy = None  # nothing more is sent; ``aclose`` closes the store
            self._status.in_store = False  # markers from now on point nowhere

    def close(self) -> None:
        self._status.close()

    async def aclose(self) -> None:
        copy, self._closing = self._closing, None
        if copy is None:
            return
        try:
            await copy.aclose()
        except store.StoreError as exc:
            if self._copy is not None:  # not reported yet
                self.store_errors += 1
                log.error("run store write failed at the end of the run: %s", exc.message)
        self._copy = None


def journal_for(
    status: journal.StatusJournal,
    environ: Mapping[str, str],
    *,
    namespace: str,
    resumed: bool,
    spec: Mapping[str, Any] | None = None,
    subject: str | None = None,
    secret_inputs: list[str] | None = None,
) -> journal.StatusJournal | Tee:
    """The status journal alone, or teed into the store when ``AUTOFLOW_STORE_URL`` is set.

    A resumed pod sends the run header again (the engine journals it only once): the store
    may never have seen it, and writing it twice changes nothing. ``spec``, ``subject`` (the
    Workflow's ``dataSubject`` evaluated: stored as a keyed hash, so ``autoflow runs erase``
    finds the run) and ``secret_inputs`` (stored redacted) go into the store's header only."""
    url = environ.get(STORE_ENV, "").strip()
    if not url:
        return status
    context: dict[str, Any] = {"namespace": namespace, "trigger": JOB_TRIGGER}
    if spec is not None:
        context["spec"] = dict(spec)
    if subject is not None:
        context["subject"] = subject
    if secret_inputs:
        context["secretInputs"] = list(secret_inputs)
    copy = store_journal.StoreJournal(url=url, context=context, retry_for=STORE_RETRY_SECONDS)
    if resumed:
        records = status.read()
        if records:
            copy.append(records[0])
    return Tee(status, copy)
