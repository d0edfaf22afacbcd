"""The runner in Job mode: ``autoflow runner --run NAMESPACE/NAME``.

One Kubernetes Job runs one WorkflowRun. The runner reads the run and the Workflow spec the
operator snapshotted into its status, executes it with the engine, and journals into the
run's status: each step's phase, attempts, timings and (bounded) output, and finally the
outputs and the runner's result. When the pod dies and the Job starts another, the new runner
rebuilds the journal from that status and resumes after the last recorded step.

The status is kept small (DESIGN §2, etcd): a step output over ``MAX_STEP_OUTPUT_BYTES`` of
JSON is replaced by a marker with a preview, and the outputs of the run are bounded the same
way. A resumed run that reads a truncated output sees the marker; full payloads belong in the
run store.

Its RBAC is small on purpose: get its WorkflowRun and patch ``workflowruns/status``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners import engine, inputs, kube, local, plan

MAX_STEP_OUTPUT_BYTES = 16 * 1024
MAX_RUN_OUTPUTS_BYTES = 64 * 1024
MAX_MESSAGE = 2000
PREVIEW = 512


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def bounded(value: Any, limit: int) -> tuple[Any, bool]:
    """(value, False) when its JSON fits in ``limit`` bytes, else (a marker, True)."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return value, False
    return {"truncated": True, "bytes": len(text.encode()), "preview": text[:PREVIEW]}, True


class StatusJournal:
    """The engine's journal kept in a WorkflowRun's status (see ``runners.journal``)."""

    def __init__(self, client: kube.Client, run: dict[str, Any], header: dict[str, Any]) -> None:
        self._client = client
        meta = run["metadata"]
        self._url = kube.path(
            kube.AUTOFLOW, "workflowruns", meta["namespace"], meta["name"], "status"
        )
        status = run.get("status") or {}
        self._header = header
        self._steps: dict[str, dict[str, Any]] = {
            s["id"]: dict(s) for s in status.get("steps") or []
        }
        self._started = status.get("startedAt")
        self._dirty: dict[str, Any] = {}

    def read(self) -> list[dict[str, Any]]:
        """Journal records rebuilt from the status, in the engine's record format."""
        if not self._started:
            return []
        records: list[dict[str, Any]] = [{**self._header, "startedAt": _epoch(self._started)}]
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
                        "startedAt": _epoch(step.get("startedAt")),
                        "finishedAt": _epoch(step.get("finishedAt")),
                    }
                )
                continue
            for index, output in (step.get("items") or {}).items():
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
        elif kind == "retry":
            step = self._steps.setdefault(record["step"], {"id": record["step"]})
            step["message"] = f"attempt {record['attempt']} failed: {record['error']}"[:MAX_MESSAGE]
            self._dirty["steps"] = True
        elif kind == "item":
            step = self._steps.setdefault(record["step"], {"id": record["step"]})
            output, _ = bounded(record.get("output"), MAX_STEP_OUTPUT_BYTES // 4)
            step.setdefault("items", {})[str(record["index"])] = output
            self._dirty["steps"] = True
        elif kind == "step":
            output, cut = bounded(record.get("output"), MAX_STEP_OUTPUT_BYTES)
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
            outputs, _ = bounded(record.get("outputs"), MAX_RUN_OUTPUTS_BYTES)
            self._dirty["outputs"] = outputs
            self._dirty["finishedAt"] = _iso(record.get("at"))
            self._dirty["result"] = {
                "phase": record["phase"],
                "error": (record.get("error") or "")[:4000],
                "runId": self._header.get("runId", ""),
            }

    async def flush(self) -> None:
        if not self._dirty:
            return
        patch = dict(self._dirty)
        if patch.pop("steps", None):
            patch["steps"] = [
                {k: v for k, v in step.items() if v is not None} for step in self._steps.values()
            ]
        self._dirty = {}
        await self._client.patch(self._url, {"status": patch})

    def close(self) -> None:
        pass


async def run_job(client: kube.Client, namespace: str, name: str) -> int:
    """Run (or resume) one WorkflowRun; exit code 0 once its result is recorded."""
    url = kube.path(kube.AUTOFLOW, "workflowruns", namespace, name)
    run = await client.get(url)
    status = run.get("status") or {}
    if (status.get("result") or {}).get("phase"):
        return 0  # finished before this pod started: nothing to do
    snapshot = status.get("workflowSnapshot")
    if not snapshot:
        raise errors.RunError(f"WorkflowRun {namespace}/{name} has no workflow snapshot yet")
    wf_name = run["spec"]["workflowRef"]["name"]
    wf = workflow.Workflow.model_validate(
        {
            "kind": "Workflow",
            "metadata": {"name": wf_name, "namespace": namespace},
            "spec": snapshot,
        }
    )
    compiled = plan.compile_workflow(wf)
    values = inputs.resolve(
        wf.spec.inputs,
        run["spec"].get("inputs") or {},
        errors.Where(resource=f"WorkflowRun/{name}"),
    )
    run_id = run["metadata"]["uid"]
    header = {
        "t": "run",
        "runId": run_id,
        "workflow": wf_name,
        "specHash": engine.spec_hash(compiled),
        "inputs": values,
    }
    execution = engine.Run(
        compiled,
        run_id=run_id,
        inputs=values,
        journal=StatusJournal(client, run, header),
        env=local.expression_env(wf, os.environ),
        run_info={"name": name, "namespace": namespace},
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, execution.cancel)
    await execution.execute()
    return 0


async def main(target: str, kubeconfig: str | None = None) -> int:
    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise errors.AutoflowError(f"--run takes NAMESPACE/NAME; got {target!r}")
    async with kube.Client.from_config(kubeconfig) as client:
        return await run_job(client, namespace, name)
