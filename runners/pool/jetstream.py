"""The runner pool over NATS JetStream: a launcher that queues run ids, and the workers.

Streams and consumer (created when missing, by whichever side starts first)::

    AUTOFLOW_RUNS       work-queue stream on ``autoflow.runs.start``: one message per run,
                        ``{"runId", "namespace", "workflow", "at"}``, Nats-Msg-Id = run id
                        (a publish retried within the duplicate window is stored once)
    autoflow-workers    the durable pull consumer every worker shares (explicit acks,
                        ``ack_wait``, at most ``max_deliveries`` + 1 deliveries)
    AUTOFLOW_RUNS_DEAD  the dead letters: runs given up after ``max_deliveries``, on
                        ``autoflow.runs.dead`` with the reason

``JetStreamLauncher`` records the run (``recording``: Store.start_run, de-duplicated) and
publishes its id. A start that fails after recording (NATS unreachable) raises; the
starter's retry with the same ``dedupe_key`` finds the run still Pending and publishes it
again (the message id makes that safe).

``Worker`` fetches at most ``concurrency`` messages at a time and runs each through the
engine with the store as the journal (``execute.Executor``). While a run executes, the
message gets an in-progress ack every third of ``ack_wait``, so a long step is not
redelivered; the message is acked only after the run's end is recorded. A worker killed
mid-run stops sending those: after ``ack_wait`` the message goes to another worker, which
resumes the run after its last recorded step (no finished step runs again; the step that
was in flight runs again, with the same idempotency key). A delivery beyond
``max_deliveries`` ends the run Failed with the reason and moves the message to the dead
letters. A worker stopped by SIGTERM interrupts its runs (steps in flight get a grace
period) and naks their messages, so other workers take them up at once.

Run events (every step transition) are published on core NATS subjects
``autoflow.events.<namespace>.<kind>`` (kind: run, step, end) by the workers; a launcher
relays them into its own ``RunEvents`` hub, which is also how ``wait`` learns a run has
ended (``relay_all=False``: only the ends, for a launcher nobody follows runs through).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from autoflow.connectors import registry as registry_mod
from autoflow.runners import engine, store
from autoflow.runners.access import limits
from autoflow.runners.pool import Outcome, RunRequest, events, execute, metrics, recording

log = logging.getLogger("autoflow.pool")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    stream: str = "AUTOFLOW_RUNS"
    subject: str = "autoflow.runs.start"
    consumer: str = "autoflow-workers"
    dead_stream: str = "AUTOFLOW_RUNS_DEAD"
    dead_subject: str = "autoflow.runs.dead"
    events_prefix: str = "autoflow.events"
    ack_wait: float = 30.0  # seconds without an ack or in-progress before redelivery
    max_deliveries: int = 5  # deliveries that may run the run; the next one gives up
    duplicate_window: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **given: Any) -> Settings:
        """Names from ``AUTOFLOW_POOL_STREAM``, ``_SUBJECT``, ``_CONSUMER``,
        ``_DEAD_STREAM``, ``_DEAD_SUBJECT``, ``_EVENTS`` (the events prefix) when set."""
        names = {
            "stream": "AUTOFLOW_POOL_STREAM",
            "subject": "AUTOFLOW_POOL_SUBJECT",
            "consumer": "AUTOFLOW_POOL_CONSUMER",
            "dead_stream": "AUTOFLOW_POOL_DEAD_STREAM",
            "dead_subject": "AUTOFLOW_POOL_DEAD_SUBJECT",
            "events_prefix": "AUTOFLOW_POOL_EVENTS",
        }
        found = {k: environ[v] for k, v in names.items() if environ.get(v)}
        return cls(**{**found, **given})


async def ensure_streams(js: Any, settings: Settings) -> None:
    """The work queue, the dead letters and the workers' consumer, as ``settings`` say."""
    wanted = nats.js.api.StreamConfig(
        name=settings.stream,
        subjects=[settings.subject],
        retention=nats.js.api.RetentionPolicy.WORK_QUEUE,
        storage=nats.js.api.StorageType.FILE,
        duplicate_window=settings.duplicate_window,
    )
    dead = nats.js.api.StreamConfig(
        name=settings.dead_stream,
        subjects=[settings.dead_subject],
        retention=nats.js.api.RetentionPolicy.LIMITS,
        storage=nats.js.api.StorageType.FILE,
        max_age=30 * 86400.0,
    )
    for config in (wanted, dead):
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # created meanwhile
                await js.add_stream(config)
    consumer = nats.js.api.ConsumerConfig(
        durable_name=settings.consumer,
        ack_policy=nats.js.api.AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_deliveries + 1,
        max_ack_pending=-1,
        filter_subject=settings.subject,
    )
    try:
        await js.consumer_info(settings.stream, settings.consumer)
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):
            await js.add_consumer(settings.stream, consumer)


def _event_subject(settings: Settings, namespace: str, kind: str) -> str:
    return f"{settings.events_prefix}.{namespace or '_'}.{kind}"


class JetStreamLauncher(recording.RecordingLauncher):
    """Records runs and queues their ids for ``autoflow worker`` processes."""

    def __init__(
        self,
        store_: store.Store,
        workflows: recording.WorkflowsFor,
        nc: NatsClient,
        *,
        settings: Settings | None = None,
        hub: events.RunEvents | None = None,
        registry: registry_mod.Registry | None = None,
        relay_all: bool = True,
    ) -> None:
        super().__init__(store_, workflows, hub=hub, registry=registry)
        self.relay_all = relay_all  # False: only run ends reach the hub (enough for wait)
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings or Settings()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._sub: Any = None

    async def start(self) -> None:
        await ensure_streams(self.js, self.settings)
        # Only the ends when nobody follows runs here (a gateway): a quarter of the messages.
        kinds = ">" if self.relay_all else "*.end"
        self._sub = await self.nc.subscribe(
            f"{self.settings.events_prefix}.{kinds}", cb=self._relay
        )

    async def aclose(self) -> None:
        self._closing = True
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self.hub.close()

    async def launch(self, request: RunRequest, *, reuse: Sequence[Mapping[str, Any]] = ()) -> Any:
        started = await super().launch(request, reuse=reuse)
        if started.duplicate:
            # The first delivery may have been recorded and then failed to queue.
            rows = await self.store.list_runs(
                store.RunFilter(run_id=started.run_id, phase="Pending"), limit=1
            )
            if rows.runs:
                await self._publish(started.run_id, request)
        return started

    async def _hand_off(self, run_id: str, request: RunRequest) -> None:
        await self._publish(run_id, request)

    async def _publish(self, run_id: str, request: RunRequest) -> None:
        body = {
            "runId": run_id,
            "namespace": request.namespace,
            "workflow": request.workflow,
            "at": time.time(),
        }
        try:
            await self.js.publish(
                self.settings.subject,
                json.dumps(body, separators=(",", ":")).encode(),
                headers={"Nats-Msg-Id": run_id},
            )
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            raise store.StoreUnavailable(
                f"run {run_id} is recorded but could not be queued on JetStream "
                f"({type(exc).__name__}); deliver it again to queue it"
            ) from None

    async def _relay(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            self.hub.publish(
                run_id=str(event["runId"]),
                namespace=str(event.get("namespace") or ""),
                workflow=str(event.get("workflow") or ""),
                kind=str(event["kind"]),
                phase=str(event["phase"]),
                step=event.get("step"),
                at=event.get("at"),
            )
        except (ValueError, KeyError, TypeError):
            return
        if event["kind"] == "end":
            for future in self._waiters.pop(str(event["runId"]), []):
                if not future.done():
                    future.set_result(None)

    async def wait(self, run_id: str, timeout: float) -> Outcome | None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            found = await _ended(self.store, run_id)
            if found is not None:
                return found
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                return None
            return await _ended(self.store, run_id)
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[run_id]


async def _ended(st: store.Store, run_id: str) -> Outcome | None:
    detail = await st.get_run(run_id)
    if detail is None or detail.summary.phase not in execute.FINAL:
        return None
    outputs = detail.outputs if isinstance(detail.outputs, Mapping) else {}
    return Outcome(run_id, detail.summary.phase, dict(outputs), detail.summary.error)


class NatsEvents(events.RunEvents):
    """A worker's hub: every event also goes out on ``autoflow.events.<namespace>``."""

    def __init__(self, nc: NatsClient, settings: Settings) -> None:
        super().__init__(capacity=1000)
        self._nc = nc
        self._settings = settings
        self._outbox: list[events.Event] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def publish(self, **kwargs: Any) -> events.Event:
        event = super().publish(**kwargs)
        self._outbox.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())
        return event

    async def _send(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            for event in batch:
                body = {k: v for k, v in event.items() if k != "id"}
                try:
                    await self._nc.publish(
                        _event_subject(self._settings, event["namespace"], event["kind"]),
                        json.dumps(body, separators=(",", ":")).encode(),
                    )
                except nats.errors.Error:
                    return  # events are best effort; the store has the history

    async def drain(self) -> None:
        if self._task is not None:
            await self._task


class Worker:
    """Consumes run ids and executes them, ``concurrency`` at a time."""

    def __init__(
        self,
        store_: store.Store,
        nc: NatsClient,
        integrations: execute.IntegrationsFor,
        *,
        settings: Settings | None = None,
        concurrency: int = 16,
        name: str = "worker",
        environ: Mapping[str, str] | None = None,
        limiter: limits.Limiter | None = None,
        registry: registry_mod.Registry | None = None,
        grace: float = 10.0,
    ) -> None:
        self.store = store_
        self.nc = nc
        self.js = nc.jetstream()
        self.settings = settings or Settings()
        self.concurrency = concurrency
        self.name = name
        self.grace = grace
        self.hub = NatsEvents(nc, self.settings)
        self.executor = execute.Executor(
            store_, integrations, hub=self.hub, environ=environ, limiter=limiter, registry=registry
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.handled = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until ``stop()``: fetch, execute, ack. Then interrupts what is in flight."""
        await ensure_streams(self.js, self.settings)
        sub = await self.js.pull_subscribe(
            self.settings.subject, durable=self.settings.consumer, stream=self.settings.stream
        )
        depth = asyncio.get_running_loop().create_task(self._watch_queue())
        in_flight = metrics.RUNS_IN_FLIGHT.labels(worker=self.name)
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(
                        [*self._tasks, asyncio.ensure_future(self._stopping.wait())],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    continue
                try:
                    msgs = await sub.fetch(free, timeout=1.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except (nats.errors.Error, nats.js.errors.Error) as exc:
                    log.warning("cannot fetch from JetStream: %s", type(exc).__name__)
                    await asyncio.sleep(1)
                    continue
                for msg in msgs:
                    task = asyncio.get_running_loop().create_task(self._handle(msg, in_flight))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            depth.cancel()
            for run in list(self.executor.runs.values()):
                run.interrupt(self.grace)
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=self.grace + 5)
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
            await self.hub.drain()

    async def _watch_queue(self) -> None:
        while True:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
                info = await self.js.consumer_info(self.settings.stream, self.settings.consumer)
                metrics.QUEUE_PENDING.set(info.num_pending or 0)
                metrics.QUEUE_ACK_PENDING.set(info.num_ack_pending or 0)
            await asyncio.sleep(5)

    async def _handle(self, msg: Msg, in_flight: Any) -> None:
        try:
            body = json.loads(msg.data)
            run_id = str(body["runId"])
        except (ValueError, KeyError, TypeError):
            log.warning("dropping a malformed message from %s", self.settings.stream)
            await msg.term()
            return
        delivered = msg.metadata.num_delivered or 1
        log.debug("run %s: delivery %d", run_id, delivered)
        if delivered > self.settings.max_deliveries:
            await self._give_up(msg, run_id, delivered - 1)
            return
        in_flight.inc()
        beat = asyncio.get_running_loop().create_task(self._heartbeat(msg))
        try:
            outcome = await self.executor.execute(run_id)
        except engine.RunInterrupted:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()  # another worker resumes it now
            return
        except Exception as exc:
            log.exception("run %s stopped: %s", run_id, exc)
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=min(30.0, 2.0**delivered))
            return
        finally:
            beat.cancel()
            in_flight.dec()
        self.handled += 1
        if outcome is not None:
            metrics.LATENCY.labels(phase=outcome.phase).observe(
                max(0.0, time.time() - float(body.get("at") or time.time()))
            )
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()

    async def _heartbeat(self, msg: Msg) -> None:
        every = max(0.2, self.settings.ack_wait / 3)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    async def _give_up(self, msg: Msg, run_id: str, tried: int) -> None:
        reason = (
            f"gave up after {tried} deliveries to runner-pool workers: each stopped before "
            "the run ended (killed, out of memory, or the store unreachable)"
        )
        try:
            await self.executor.fail(run_id, reason)
        except store.StoreError as exc:
            log.warning("cannot record run %s as failed: %s", run_id, exc.message)
            return  # redelivered after ack_wait: tried again then
        dead = {**json.loads(msg.data), "reason": reason, "deliveries": tried}
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error):
            await self.js.publish(
                self.settings.dead_subject,
                json.dumps(dead).encode(),
                headers={"Nats-Msg-Id": run_id},
            )
        metrics.DEAD_LETTERS.inc()
        self.hub.publish(
            run_id=run_id,
            namespace=str(dead.get("namespace") or ""),
            workflow=str(dead.get("workflow") or ""),
            kind="end",
            phase="Failed",
        )
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()


async def connect(url: str, *, name: str) -> NatsClient:
    """A NATS connection that keeps reconnecting; the URL never appears in errors."""
    try:
        nc: NatsClient = await nats.connect(
            url, name=name, max_reconnect_attempts=-1, connect_timeout=5, allow_reconnect=True
        )
    except (OSError, nats.errors.Error) as exc:
        raise store.StoreUnavailable(
            f"cannot reach NATS for the runner pool: {type(exc).__name__}"
        ) from None
    return nc
