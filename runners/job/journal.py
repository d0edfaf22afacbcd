"""The engine's journal kept in a WorkflowRun's status, for the Job runner.

Each record the engine journals (``runners.engine.journal``) becomes part of the run's status:
each step's phase, attempts, timings and (bounded) output, and finally the outputs and the
runner's result. A new pod rebuilds the records from that status (``read``) and resumes
after the last recorded step.

The status is kept small (DESIGN §2, etcd): a step output over ``MAX_STEP_OUTPUT_BYTES`` of
JSON is replaced by a marker with a preview. The run's outputs share ``MAX_RUN_OUTPUTS_BYTES``:
when they do not fit, the largest are replaced by markers, one at a time, until they do, so
one oversized output never costs the small ones beside it (``bounded_outputs``). A resumed
run that reads a truncated output sees the marker; full payloads belong in the run store:
with one configured (``runners.job.payloads``), a step's marker says so (``"store": true``
and ``"hint": "autoflow runs show RUN_ID"``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from typing import Any

from autoflow.crds import meta
from autoflow.runners import kube

MAX_STEP_OUTPUT_BYTES = 16 * 1024
MAX_RUN_OUTPUTS_BYTES = 64 * 1024
MAX_MESSAGE = 2000
PREVIEW = 512
WRITE_ATTEMPTS = 5
ITEMS_KEY = "completedItems"

log = logging.getLogger("autoflow.runner")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else meta.timestamp(ts)


def bounded(value: Any, limit: int) -> tuple[Any, bool]:
    """(value, False) when its JSON fits in ``limit`` bytes, else (a marker, True)."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return value, False
    return {"truncated": True, "bytes": len(text.encode()), "preview": text[:PREVIEW]}, True


def bounded_outputs(outputs: Any, limit: int) -> Any:
    """The run's outputs in ``limit`` bytes of JSON: the largest replaced by markers first.

    Outputs that are not a mapping, or that do not fit even with every output a marker
    (thousands of them), become one marker as ``bounded`` makes it.
    """
    whole, cut = bounded(outputs, limit)
    if not cut or not isinstance(outputs, dict):
        return whole
    kept = dict(outputs)
    sizes = {key: len(_json(value)) for key, value in outputs.items()}
    # Largest first, and by name among equals, so the same outputs always keep the same.
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        if len(_json(kept)) <= limit:
            return kept
        marker, cut = bounded(outputs[key], 0)
        if cut and len(_json(marker)) < sizes[key]:
            kept[key] = marker
    return kept if len(_json(kept)) <= limit else whole


class StatusJournal:
    """The engine's journal kept in a WorkflowRun's status (see ``runners.engine.journal``)."""

    def __init__(
        self,
        client: kube.Client,
        run: dict[str, Any],
        header: dict[str, Any],
        *,
        in_store: bool = False,
    ) -> None:
        self._client = client
        # Whether full values also go to the run store: a truncated output then says where.
        self.in_store = in_store
        meta = run["metadata"]
        self._url = kube.paths.run(meta["namespace"], meta["name"], "status")
        status = run.get("status") or {}
        self._header = header
        self._steps: dict[str, dict[str, Any]] = {
            s["id"]: dict(s) for s in status.get("steps") or []
        }
        self._started = status.get("startedAt")
        self._dirty: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    def read(self) -> list[dict[str, Any]]:
        """Journal records rebuilt from the status, in the engine's record format."""
        if not self._started:
            return []
        records: list[dict[str, Any]] = [{**self._header, "startedAt": meta.epoch(self._started)}]
        for sid, step in self._steps.items():
            phase = step.get("phase")
            if phase in {"Succeeded", "Failed", "Skipped", "Cancelled"}:
                records.append(
                    {
                        "t": "step",
                        "step": sid,
                        "phase": phase,
                        "output": step.get("output"),
                        "error": step.get("message") if phase == "Failed" else None,
                        "attempts": step.get("attempts", 0),
                        "startedAt": meta.epoch(step.get("startedAt")),
                        "finishedAt": meta.epoch(step.get("finishedAt")),
                    }
                )
                continue
            for index, output in _completed_items(step).items():
                records.append({"t": "item", "step": sid, "index": int(index), "output": output})
            if step.get("attempts"):
                records.append({"t": "start", "step": sid, "attempt": step["attempts"]})
        return records

    def append(self, record: dict[str, Any]) -> None:
        kind = record["t"]
        if kind == "run":
            self._started = _iso(record["startedAt"])
            self._dirty["startedAt"] = self._started
        elif kind == "start":
            step = self._steps.setdefault(record["step"], {"id": record["step"]})
            step.update(phase="Running", attempts=record["attempt"])
            step.setdefault("startedAt", _iso(datetime.datetime.now(datetime.UTC).timestamp()))
            self._dirty["steps"] = True
            self._flush_soon()  # so the status shows the step running while it runs
        elif kind == "retry":
            step = self._steps.setdefault(record["step"], {"id": record["step"]})
            step["message"] = f"attempt {record['attempt']} failed: {record['error']}"[:MAX_MESSAGE]
            self._dirty["steps"] = True
        elif kind == "item":
            step = self._steps.setdefault(record["step"], {"id": record["step"]})
            done = _completed_items(step)
            done[str(record["index"])] = record.get("output")
            if len(_json(done)) <= MAX_STEP_OUTPUT_BYTES:
                # Beyond the budget an item is not journaled: a resumed run does it again
                # (with the same idempotency key), which is what at-least-once allows.
                step["output"] = {ITEMS_KEY: done}
                self._dirty["steps"] = True
        elif kind == "step":
            output, cut = bounded(record.get("output"), MAX_STEP_OUTPUT_BYTES)
            if cut and self.in_store:
                hint = f"autoflow runs show {self._header.get('runId', '')}"
                output = {**output, "store": True, "hint": hint}
            # Finished steps are listed in the order they finished: ``read`` gives the records
            # back in that order, so a resumed run replays the decisions the way they were made.
            self._steps.pop(record["step"], None)
            self._steps[record["step"]] = {
                "id": record["step"],
                "phase": record["phase"],
                "attempts": record.get("attempts", 0),
                "startedAt": _iso(record.get("startedAt")),
                "finishedAt": _iso(record.get("finishedAt")),
                "message": (record.get("error") or record.get("message") or "")[:MAX_MESSAGE],
                "output": output,
                "outputTruncated": cut,
            }
            self._dirty["steps"] = True
        elif kind == "end":
            # A step stopped in flight (cancel, timeout) has no record of its own: say so.
            for step in self._steps.values():
                if step.get("phase") == "Running":
                    step.update(
                        phase="Cancelled",
                        finishedAt=_iso(record.get("at")),
                        message=f"stopped: {record.get('error') or 'the run ended'}"[:MAX_MESSAGE],
                    )
                    step.pop("output", None)
                    self._dirty["steps"] = True
            self._dirty["outputs"] = bounded_outputs(record.get("outputs"), MAX_RUN_OUTPUTS_BYTES)
            self._dirty["finishedAt"] = _iso(record.get("at"))
            self._dirty["result"] = {
                "phase": record["phase"],
                "error": (record.get("error") or "")[:4000],
                "runId": self._header.get("runId", ""),
            }

    def _flush_soon(self) -> None:
        """Flush in the background: nothing waits for a record that nothing depends on."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._background is None or self._background.done():
            self._background = loop.create_task(self._flush_quietly())

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except kube.ApiError as exc:  # kept dirty: the next flush writes it
            log.warning("could not write the run status: %s", exc)

    async def flush(self) -> None:
        # One write at a time, in order: each sends the whole step list, so a late older
        # write must never land after a newer one.
        async with self._lock:
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, {}
            patch = dict(dirty)
            if patch.pop("steps", None):
                patch["steps"] = [
                    {k: v for k, v in step.items() if v is not None}
                    for step in self._steps.values()
                ]
            try:
                await _patch_with_retries(self._client, self._url, {"status": patch})
            except BaseException:
                for key, value in dirty.items():
                    self._dirty.setdefault(key, value)
                raise

    def close(self) -> None:
        pass


async def _patch_with_retries(client: kube.Client, url: str, body: dict[str, Any]) -> None:
    """A status write that rides out a short API server outage; then the pod fails and the
    Job's next pod resumes from what was written."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            await client.patch(url, body)
            return
        except kube.ApiError as exc:
            if not exc.transient or attempt == WRITE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(min(0.2 * 2**attempt, 3.0))


def _json(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def _completed_items(step: dict[str, Any]) -> dict[str, Any]:
    """The finished items of a running foreach step, kept in its output until it ends.

    The CRD's step status has no field of its own for them (``output`` takes any JSON).
    """
    output = step.get("output")
    if step.get("phase") == "Running" and isinstance(output, dict):
        items = output.get(ITEMS_KEY)
        if isinstance(items, dict):
            return dict(items)
    return {}
