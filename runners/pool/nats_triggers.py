"""NATS event triggers: each message on a Workflow's ``nats`` trigger subject starts a run.

For every ``triggers[i].nats`` of every Workflow given, a JetStream durable pull consumer
(``consumer``, default ``autoflow-<namespace>-<workflow>``) on ``stream`` (default: the
stream holding the subject) feeds the same launch path as webhooks: the message becomes the
run's inputs (the trigger's ``inputs`` expressions over ``body`` (JSON when it parses, else
the text), ``headers`` and ``subject``; without a mapping, the body's top-level keys that are
declared inputs), and the launcher records the run de-duplicated by the message's delivery
id: ``deliveryId`` when the trigger says, else the ``Nats-Msg-Id`` header, else the
message's stream sequence. A message redelivered (the consumer's ack was lost, a restart)
therefore starts no second run. The message is acked once the run is recorded (not when it
ends: the run's own journal carries it from there). A message whose inputs are refused (a
clear error in the log naming the Workflow and the input) is terminated, not redelivered;
a store that cannot be reached leaves it for redelivery.

A trigger that names an ``integration`` (type ``nats``) consumes through its own connection,
made from that Integration's settings and credentials in the Workflow's namespace as a
``nats`` step's is (``connectors.builtin.nats.consumer_connection``), not the pool's: events
can come from another NATS system or account. An Integration that is missing, of another
type, or refused by the server is logged (naming it, never a credential) and tried again
every ``INTEGRATION_RETRY`` seconds, so fixing it needs no restart.

``NatsTriggers.sync(workflows)`` starts consumers for triggers that appeared and stops those
of triggers that went; ``autoflow serve --nats URL`` and the gateway call it as Workflows
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from autoflow.connectors import sdk
from autoflow.crds import errors, webhook, workflow
from autoflow.runners import store
from autoflow.runners.access import redact
from autoflow.runners.definitions import triggers
from autoflow.runners.pool import Launcher, RunRequest
from autoflow.runners.pool.execute import IntegrationsFor

log = logging.getLogger("autoflow.pool")
BATCH = 64
INTEGRATION_RETRY = 5.0


def consumer_name(namespace: str, name: str) -> str:
    return f"autoflow-{namespace or 'default'}-{name}".replace(".", "-")


@dataclasses.dataclass(frozen=True)
class _Key:
    namespace: str
    workflow: str
    index: int
    subject: str
    stream: str | None
    consumer: str


class _Consumer:
    def __init__(self, key: _Key, wf: workflow.Workflow, trigger: webhook.NatsTrigger) -> None:
        self.key = key
        self.wf = wf
        self.trigger = trigger
        where = errors.Where(resource=wf.ref, field=f"triggers[{key.index}].nats")
        self.mapping = (
            triggers.compile_mapping(
                trigger.inputs, where.replace(field=f"{where.field}.inputs"), triggers.NATS_ROOTS
            )
            if trigger.inputs is not None
            else None
        )
        delivery = trigger.delivery_id
        self.delivery_expr = (
            triggers.compile_delivery(
                delivery.expression,
                where.replace(field=f"{where.field}.deliveryId.expression"),
                triggers.NATS_ROOTS,
            )
            if delivery is not None and delivery.expression
            else None
        )
        self.delivery_header = (
            delivery.header.lower() if delivery is not None and delivery.header else None
        )
        self.task: asyncio.Task[None] | None = None
        self.started = 0


class NatsTriggers:
    """``nc``: the pool's NATS connection, for triggers that name no Integration (None: such
    a trigger is logged and not started); ``integrations``: the Integration provider of a
    namespace, for those that do."""

    def __init__(
        self,
        nc: NatsClient | None,
        launcher: Launcher,
        integrations: IntegrationsFor | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream() if nc is not None else None
        self.launcher = launcher
        self.integrations = integrations
        self._consumers: dict[_Key, _Consumer] = {}

    @property
    def consumers(self) -> list[str]:
        return sorted(k.consumer for k in self._consumers)

    def sync(self, workflows: Iterable[workflow.Workflow]) -> None:
        """Consumers for exactly the ``nats`` triggers of ``workflows``."""
        wanted: dict[_Key, tuple[workflow.Workflow, webhook.NatsTrigger]] = {}
        for wf in workflows:
            ns, name = wf.metadata.namespace or "", wf.metadata.name or ""
            for index, trigger in enumerate(wf.spec.triggers):
                if trigger.nats is None:
                    continue
                nt = trigger.nats
                key = _Key(
                    ns,
                    name,
                    index,
                    nt.subject,
                    nt.stream,
                    nt.consumer or consumer_name(ns, name) + (f"-{index}" if index else ""),
                )
                wanted[key] = (wf, nt)
        for key in list(self._consumers):
            if key not in wanted:
                gone = self._consumers.pop(key)
                if gone.task is not None:
                    gone.task.cancel()
        for key, (wf, nt) in wanted.items():
            current = self._consumers.get(key)
            if current is not None:
                current.wf, current.trigger = wf, nt
                continue
            try:
                consumer = _Consumer(key, wf, nt)
            except errors.AutoflowError as exc:
                log.warning("nats trigger of %s not started: %s", wf.ref, exc)
                continue
            consumer.task = asyncio.get_running_loop().create_task(self._consume(consumer))
            self._consumers[key] = consumer

    async def aclose(self) -> None:
        tasks = [c.task for c in self._consumers.values() if c.task is not None]
        self._consumers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, c: _Consumer) -> None:
        name = c.trigger.integration
        if name is None:
            if self.js is None:
                log.warning(
                    "nats trigger %s of %s/%s not started: it names no integration and no "
                    "NATS server was given (--nats)",
                    c.key.subject,
                    c.key.namespace,
                    c.key.workflow,
                )
                return
            await self._consume_on(c, self.js)
            return
        from autoflow.connectors.builtin import nats as nats_connector

        while True:
            try:
                info = await self._integration(c.key.namespace, name)
                async with nats_connector.consumer_connection(info) as nc:
                    await self._consume_on(c, nc.jetstream())
            except errors.AutoflowError as exc:
                log.warning(
                    "nats trigger %s of %s/%s cannot use integration %r (trying again in %g s): %s",
                    c.key.subject,
                    c.key.namespace,
                    c.key.workflow,
                    name,
                    INTEGRATION_RETRY,
                    exc.message,
                )
            await asyncio.sleep(INTEGRATION_RETRY)

    async def _integration(self, namespace: str, name: str) -> sdk.IntegrationInfo:
        where = errors.Where(resource=f"Integration/{name}")
        provider = self.integrations(namespace) if self.integrations is not None else None
        if provider is None:
            raise errors.PermanentError(
                f"integration {name!r}: no Integrations can be read here", where
            )
        info = await provider.get(name, redact.Redactor())
        if info.type != "nats":
            raise errors.InvalidSettingsError(
                f"integration {name!r} is of type {info.type!r}; a nats trigger needs a "
                "nats Integration",
                where.replace(field="type"),
            )
        return info

    async def _consume_on(self, c: _Consumer, js: Any) -> None:
        key = c.key
        while True:
            try:
                stream = key.stream or await js.find_stream_name_by_subject(key.subject)
                sub = await js.pull_subscribe(key.subject, durable=key.consumer, stream=stream)
                break
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning(
                    "nats trigger %s of %s/%s waits for its stream: %s",
                    key.subject,
                    key.namespace,
                    key.workflow,
                    type(exc).__name__,
                )
                await asyncio.sleep(2)
        try:
            while True:
                try:
                    msgs = await sub.fetch(BATCH, timeout=1.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except (nats.errors.Error, nats.js.errors.Error):
                    await asyncio.sleep(1)
                    continue
                for msg in msgs:
                    await self._handle(c, msg)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, c: _Consumer, msg: Msg) -> None:
        key = c.key
        headers = {k.lower(): v for k, v in (msg.headers or {}).items()}
        try:
            text = msg.data.decode()
        except UnicodeDecodeError:
            text = msg.data.decode("latin-1")
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        scope = {"body": body, "headers": headers, "subject": msg.subject}
        try:
            inputs = (
                c.mapping.render(scope)
                if c.mapping is not None
                else triggers.declared_inputs(body, c.wf)
            )
            if c.delivery_expr is not None:
                delivery = str(c.delivery_expr(scope))
            elif c.delivery_header is not None:
                delivery = headers.get(c.delivery_header, "")
            else:
                delivery = headers.get("nats-msg-id", "")
            if not delivery:
                delivery = f"seq-{msg.metadata.sequence.stream}"
            dedupe = f"nats:{key.namespace}/{key.workflow}/{key.index}:{delivery}"
            started = await self.launcher.launch(
                RunRequest(
                    key.namespace,
                    key.workflow,
                    inputs,
                    "nats",
                    f"nats:{msg.subject}",
                    dedupe_key=dedupe[:1000],
                )
            )
        except store.StoreError as exc:
            log.warning("nats trigger of %s: %s; the message is redelivered", c.wf.ref, exc)
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=2)
            return
        except errors.AutoflowError as exc:
            log.warning(
                "nats trigger %s of %s: message %d refused: %s",
                key.subject,
                c.wf.ref,
                msg.metadata.sequence.stream,
                exc,
            )
            with contextlib.suppress(nats.errors.Error):
                await msg.term()
            return
        if not started.duplicate:
            c.started += 1
        with contextlib.suppress(nats.errors.Error):
            await msg.ack()
