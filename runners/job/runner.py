"""The runner in Job mode: ``autoflow runner --run NAMESPACE/NAME``.

One Kubernetes Job runs one WorkflowRun. The runner reads the run and the Workflow spec the
operator snapshotted into its status, executes it with the engine, and journals into the
run's status (``journal.StatusJournal``). When the pod dies and the Job starts another, the
new runner rebuilds the journal from that status and resumes after the last recorded step.

A signal (SIGTERM from the kubelet: a node drain, an eviction, a suspended Job) is an
interruption, not a cancel: no new step starts, the steps in flight get what is left of the
pod's grace period to finish and be journaled, no end is recorded, and the runner exits
non-zero so the Job's next pod resumes after the last recorded step. Only the run's
``spec.cancel`` cancels: the runner reads it when the signal arrives, and when it is set the
run is cancelled instead (the running main steps stop, ``finally`` runs, ``Cancelled`` is
recorded) and the runner exits 0.

A run with ``spec.retryOf`` is a retry from the failed step: its first pod journals the
failed run's succeeded main steps (read from the run store) as its own before the engine
starts, so the engine resumes after them (``runners.job.retry``); a retry that cannot be
made (no store, another version of the Workflow, other inputs) is recorded as the run's
failure, saying why.

Its RBAC is small on purpose: get its WorkflowRun and patch ``workflowruns/status``, and get
the Integrations its steps name and their Secrets (``runners.job.integrations``), by name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners import engine, expressions, kube
from autoflow.runners.access import limits
from autoflow.runners.definitions import inputs, plan
from autoflow.runners.job import integrations as kube_integrations
from autoflow.runners.job import journal, payloads, retry
from autoflow.runners.local import run as local

ACCESS_WAIT_SECONDS = 20.0
# The pod's terminationGracePeriodSeconds (the operator sets both); what is left of it after a
# signal goes to the steps in flight, less a margin for the last status write and the exit.
GRACE_ENV = "AUTOFLOW_TERMINATION_GRACE_SECONDS"
TERMINATION_GRACE_SECONDS = 30.0
GRACE_MARGIN_SECONDS = 5.0
CANCEL_CHECK_SECONDS = 5.0  # how long a signal waits to learn whether the run is cancelled

log = logging.getLogger("autoflow.runner")


async def _first_read(client: kube.Client, url: str) -> dict[str, Any]:
    """The run, read as soon as this pod's access to it works.

    The operator creates the run's RoleBinding alongside its Job, and API servers authorize
    from a cache of RBAC objects, so a pod that starts fast may be refused for a moment.
    """
    deadline = asyncio.get_running_loop().time() + ACCESS_WAIT_SECONDS
    delay = 0.1
    while True:
        try:
            return await client.get(url)
        except kube.Forbidden:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def grace_seconds(environ: Mapping[str, str]) -> float:
    """The seconds steps in flight get after a signal: the pod's grace less a margin."""
    try:
        grace = float(environ.get(GRACE_ENV) or TERMINATION_GRACE_SECONDS)
    except ValueError:
        grace = TERMINATION_GRACE_SECONDS
    return max(grace - GRACE_MARGIN_SECONDS, 0.0)


class _Stop:
    """What a signal does to the run: an interruption, unless ``spec.cancel`` says cancel.

    The run is interrupted at once (nothing new starts while its spec is read); a cancel read
    then still turns the interruption into a cancel (``engine.Run.cancel``).
    """

    def __init__(self, client: kube.Client, url: str, execution: engine.Run, grace: float) -> None:
        self._client = client
        self._url = url
        self._execution = execution
        self._grace = grace
        self._check: asyncio.Task[bool] | None = None
        self.signum = 0

    def __call__(self, signum: int) -> None:
        if self.signum:
            return  # one decision; the kubelet's SIGKILL ends the pod when the grace is over
        self.signum = signum
        log.info("signal %d: no new step starts; reading whether the run is cancelled", signum)
        self._execution.interrupt(self._grace)
        self._check = asyncio.get_running_loop().create_task(self._cancel_requested())

    async def _cancel_requested(self) -> bool:
        try:
            async with asyncio.timeout(CANCEL_CHECK_SECONDS):
                run = await self._client.get(self._url)
        except (kube.ApiError, TimeoutError) as exc:
            # Unknown is treated as an interruption: the next pod (if any) reads it again.
            log.warning("could not read the run's spec.cancel, stopping as interrupted: %s", exc)
            return False
        if not run["spec"].get("cancel"):
            return False
        log.info("the run is cancelled (spec.cancel): stopping its steps and running finally")
        self._execution.cancel()
        return True

    async def cancel_requested(self) -> bool:
        """Whether the signal turned out to be a cancel (waits for the answer)."""
        return self._check is not None and await self._check


async def run_job(client: kube.Client, namespace: str, name: str) -> int:
    """Run (or resume) one WorkflowRun; exit code 0 once its result is recorded, 128 + the
    signal's number when a signal interrupted it (the Job's next pod resumes)."""
    while True:
        code = await _run_once(client, namespace, name)
        if code is not None:
            return code
        # A cancel read just as the last steps in flight finished: the run stopped as
        # interrupted, so it is taken up again as cancelled (as a next pod would).


async def _run_once(client: kube.Client, namespace: str, name: str) -> int | None:
    url = kube.paths.run(namespace, name)
    run = await _first_read(client, url)
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
    where = errors.Where(resource=f"WorkflowRun/{name}")
    values = inputs.resolve(wf.spec.inputs, run["spec"].get("inputs") or {}, where)
    run_id = run["metadata"]["uid"]
    header = {
        "t": "run",
        "runId": run_id,
        "workflow": wf_name,
        "specHash": engine.spec_hash(compiled),
        "inputs": values,
    }
    in_store = bool(os.environ.get(payloads.STORE_ENV, "").strip())
    status_journal = journal.StatusJournal(client, run, header, in_store=in_store)
    run_journal = payloads.journal_for(
        status_journal,
        os.environ,
        namespace=namespace,
        resumed=bool(status.get("startedAt")),
        # What only the store's copy of the header holds: the spec, the data subject (a
        # keyed hash in the store, so the run can be erased by subject), the secret inputs.
        spec=wf.spec.dump(),
        subject=inputs.data_subject(wf.spec, values, where) if in_store else None,
        secret_inputs=inputs.secret_names(wf.spec.inputs),
    )
    retry_of = str(run["spec"].get("retryOf") or "")
    # The first pod of a retry: its journal starts with the failed run's succeeded steps (a
    # later pod resumes from the status like any run). Refused, its failure is journaled and
    # not one step may run (the engine would start from the first step, calling services the
    # failed run already called).
    first_of_retry = bool(retry_of) and not status.get("startedAt")
    if first_of_retry and not await _start_retry(
        run_journal, header, retry_of, namespace, values, compiled
    ):
        if isinstance(run_journal, payloads.Tee):
            await run_journal.aclose()
        return 0
    execution = engine.Run(
        compiled,
        run_id=run_id,
        inputs=values,
        journal=run_journal,
        env=local.expression_env(wf, os.environ),
        integrations=kube_integrations.KubeIntegrations(client, namespace),
        limiter=limits.from_env(os.environ),
        run_info={"name": name, "namespace": namespace},
    )
    loop = asyncio.get_running_loop()
    stop = _Stop(client, url, execution, grace_seconds(os.environ))
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    expressions.stop_on(*signals)  # also in the middle of an expression
    if run["spec"].get("cancel"):
        execution.cancel()  # cancelled before this pod started: only finally runs
    try:
        await execution.execute()
    except engine.RunInterrupted as exc:
        if await stop.cancel_requested():
            return None
        log.info("%s; exiting for the Job's next pod to resume it", exc.message)
        return 128 + stop.signum
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await execution.limiter.aclose()
        if isinstance(run_journal, payloads.Tee):
            await run_journal.aclose()
    return 0


async def _start_retry(
    run_journal: journal.StatusJournal | payloads.Tee,
    header: dict[str, Any],
    retry_of: str,
    namespace: str,
    values: dict[str, Any],
    compiled: plan.Plan,
) -> bool:
    """Journal the header and the reused steps (True: the run goes on), or the refusal as
    the run's failure (False: the run has ended)."""
    started = time.time()
    try:
        reused = await retry.reusable_steps(
            os.environ,
            retry_of,
            namespace=namespace,
            workflow=header["workflow"],
            spec_hash=header["specHash"],
            values=values,
            main=list(compiled.main.order),
        )
    except retry.RetryRefused as exc:
        log.warning("%s", exc.message)
        end = {"t": "end", "phase": "Failed", "outputs": None, "error": exc.message}
        records = [{**header, "startedAt": started}, {**end, "at": time.time()}]
    else:
        log.info("retry of run %s: %d finished steps reused", retry_of, len(reused))
        records = [{**header, "startedAt": started}, *reused]
    for record in records:
        run_journal.append(record)
    await run_journal.flush()
    return bool(records[-1]["t"] != "end")


async def main(target: str, kubeconfig: str | None = None) -> int:
    namespace, sep, name = target.partition("/")
    if not sep or not namespace or not name:
        raise errors.AutoflowError(f"--run takes NAMESPACE/NAME; got {target!r}")
    async with kube.Client.from_config(kubeconfig) as client:
        return await run_job(client, namespace, name)
