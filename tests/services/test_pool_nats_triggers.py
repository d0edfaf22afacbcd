"""NATS event triggers against a real JetStream: a message becomes a run, once.

The Workflow's ``nats`` trigger maps the message to inputs; the in-process launcher (what
``autoflow serve`` runs) records and executes the run in a SQLite store. A message delivered
again with the same delivery id starts no second run; a message whose inputs are refused
starts none and is not redelivered forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import nats
import nats.js.api
import servers

from autoflow.crds import integration, workflow
from autoflow.runners import store
from autoflow.runners.local import run as local_run
from autoflow.runners.pool import inprocess, nats_triggers


async def test_messages_on_a_trigger_subject_start_runs_once_per_delivery_id(
    nats_server: servers.Nats, tmp_path: Path
) -> None:
    tag = os.urandom(3).hex()
    subject = f"orders{tag}.created"
    wf = workflow.Workflow.model_validate(
        {
            "kind": "Workflow",
            "metadata": {"name": "on-order", "namespace": "shop"},
            "spec": {
                "inputs": {"order": {"type": "string"}, "total": {"type": "number"}},
                "triggers": [
                    {
                        "nats": {
                            "subject": subject,
                            "inputs": {"order": "${ body.id }", "total": "${ body.total }"},
                            "deliveryId": {"expression": "${ body.id }"},
                        }
                    }
                ],
                "steps": [{"id": "log", "uses": "core.log", "with": {"message": "${ inputs }"}}],
                "outputs": {"order": "${ inputs.order }"},
            },
        }
    )
    st = await store.open_store(f"sqlite:///{tmp_path}/runs.db")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(nats.js.api.StreamConfig(name=f"ORDERS{tag}", subjects=[f"orders{tag}.>"]))
    launcher = inprocess.InProcessLauncher(st, lambda ns, name: wf, lambda ns: None)
    consumers = nats_triggers.NatsTriggers(nc, launcher)
    consumers.sync([wf])
    assert consumers.consumers == ["autoflow-shop-on-order"]
    try:
        for body in (
            {"id": "o-1", "total": 10.5},
            {"id": "o-2", "total": 3},
            {"id": "o-1", "total": 10.5},  # the sender delivered o-1 again
            {"id": "o-3", "total": "lots"},  # refused: total is not a number
        ):
            await js.publish(subject, json.dumps(body).encode())

        async def runs() -> list[Any]:
            page = await st.list_runs(store.RunFilter(workflow="on-order", phase="Succeeded"))
            return list(page.runs)

        deadline = time.monotonic() + 20
        while len(await runs()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # time for a wrong second o-1 run to appear
        found = await runs()
        assert len(found) == 2
        assert {r.trigger for r in found} == {"nats"}
        assert {r.started_by for r in found} == {f"nats:{subject}"}
        details = [await st.get_run(r.run_id) for r in found]
        assert sorted(d.outputs["order"] for d in details if d) == ["o-1", "o-2"]
        assert sorted(d.inputs["total"] for d in details if d) == [3, 10.5]
        # Every message was acked or terminated: nothing waits for redelivery.
        info = await js.consumer_info(f"ORDERS{tag}", "autoflow-shop-on-order")
        assert info.num_ack_pending == 0 and info.num_pending == 0
        consumers.sync([])  # the trigger went: its consumer stops
        assert consumers.consumers == []
    finally:
        await consumers.aclose()
        await launcher.aclose()
        await nc.close()
        await st.aclose()


async def test_a_trigger_naming_an_integration_consumes_with_its_connection(
    nats_factory: Any, tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    """Events from another NATS system: the trigger's Integration gives the servers and the
    token; the pool has no NATS connection at all. A wrong Integration is logged (never its
    token) and tried again, so fixing it needs no restart."""
    token = "bus-t0ken-" + os.urandom(4).hex()
    bus = nats_factory("--auth", token)
    tag = os.urandom(3).hex()
    subject = f"events{tag}.signup"
    wf = workflow.Workflow.model_validate(
        {
            "kind": "Workflow",
            "metadata": {"name": "on-signup", "namespace": "crm"},
            "spec": {
                "inputs": {"email": {"type": "string"}},
                "triggers": [{"nats": {"subject": subject, "integration": "events-bus"}}],
                "steps": [{"id": "log", "uses": "core.log", "with": {"message": "${ inputs }"}}],
                "outputs": {"email": "${ inputs.email }"},
            },
        }
    )

    def nats_integration(kind: str) -> integration.Integration:
        return integration.Integration.model_validate(
            {
                "kind": "Integration",
                "metadata": {"name": "events-bus"},
                "spec": {"type": kind, "settings": {"servers": bus.url}},
            }
        )

    secrets = {"events-bus": {"token": token}}
    current = [local_run.LocalIntegrations([nats_integration("http")], secrets)]
    st = await store.open_store(f"sqlite:///{tmp_path}/runs.db")
    launcher = inprocess.InProcessLauncher(st, lambda ns, name: wf, lambda ns: None)
    consumers = nats_triggers.NatsTriggers(None, launcher, integrations=lambda ns: current[0])
    admin = await nats.connect(bus.url, token=token)
    js = admin.jetstream()
    await js.add_stream(nats.js.api.StreamConfig(name=f"EV{tag}", subjects=[f"events{tag}.>"]))
    monkeypatch.setattr(nats_triggers, "INTEGRATION_RETRY", 0.2)
    try:
        consumers.sync([wf])
        deadline = time.monotonic() + 10
        while "needs a nats Integration" not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "integration 'events-bus' is of type 'http'" in caplog.text
        current[0] = local_run.LocalIntegrations([nats_integration("nats")], secrets)  # fixed
        await js.publish(subject, json.dumps({"email": "ann@example.com"}).encode())

        async def runs() -> list[Any]:
            page = await st.list_runs(store.RunFilter(workflow="on-signup", phase="Succeeded"))
            return list(page.runs)

        deadline = time.monotonic() + 20
        while not await runs() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        (run,) = await runs()
        assert run.trigger == "nats" and run.namespace == "crm"
        detail = await st.get_run(run.run_id)
        assert detail is not None and detail.outputs == {"email": "ann@example.com"}
        info = await js.consumer_info(f"EV{tag}", "autoflow-crm-on-signup")
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert token not in caplog.text
    finally:
        await consumers.aclose()
        await launcher.aclose()
        await admin.close()
        await st.aclose()
