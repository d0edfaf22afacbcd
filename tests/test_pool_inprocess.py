"""The in-process launcher (``autoflow serve``'s executor) over a real SQLite run store.

A launched run is recorded Pending, runs through the engine with the store as its journal,
and ``wait`` answers with its outcome; a redelivered start answers with the first run;
inputs are checked before anything is recorded; at most ``concurrency`` runs execute at once;
a launcher stopped mid-run resumes the run at the next start without repeating a step; the
event hub sees every transition in order and replays from an id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from engine_probe import Probe, make_workflow

from autoflow.crds import errors, workflow
from autoflow.runners import store
from autoflow.runners.pool import RunRequest, events, inprocess

SPEC: dict[str, Any] = {
    "inputs": {"n": {"type": "integer"}},
    "steps": [
        {"id": "a", "uses": "t.call", "with": {"value": "${ inputs.n }"}},
        {"id": "b", "uses": "t.call", "with": {"value": "${ steps.a.output * 2 }"}},
    ],
    "outputs": {"b": "${ steps.b.output }"},
}


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[store.Store]:
    opened = await store.open_store(f"sqlite:///{tmp_path}/runs.db")
    yield opened
    await opened.aclose()


def launcher_for(
    st: store.Store, probe: Probe, specs: dict[str, dict[str, Any]], **kw: Any
) -> inprocess.InProcessLauncher:
    flows = {name: make_workflow(spec, name) for name, spec in specs.items()}

    def find(namespace: str, name: str) -> workflow.Workflow | None:
        return flows.get(name) if namespace == "shop" else None

    return inprocess.InProcessLauncher(st, find, lambda ns: None, registry=probe.registry, **kw)


def request(n: int, key: str | None = None, name: str = "wf") -> RunRequest:
    return RunRequest("shop", name, {"n": n}, "webhook", "webhook:/hooks/shop/wf", dedupe_key=key)


async def test_a_launched_run_is_recorded_runs_and_wait_gives_its_outputs(
    st: store.Store, probe: Probe
) -> None:
    launcher = launcher_for(st, probe, {"wf": SPEC})
    started = await launcher.launch(request(21))
    assert not started.duplicate
    outcome = await launcher.wait(started.run_id, 10)
    assert outcome is not None
    assert (outcome.phase, dict(outcome.outputs), outcome.error) == ("Succeeded", {"b": 42}, None)
    run = await st.get_run(started.run_id)
    assert run is not None
    assert (run.summary.phase, run.summary.trigger, run.summary.namespace) == (
        "Succeeded",
        "webhook",
        "shop",
    )
    assert [s.step for s in run.steps] == ["a", "b"]
    # Ended before this wait: answered from memory, and from the store by another launcher.
    assert await launcher.wait(started.run_id, 0) == outcome
    other = launcher_for(st, probe, {"wf": SPEC})
    assert await other.wait(started.run_id, 0) == outcome
    await launcher.aclose()


async def test_a_redelivery_answers_with_the_first_run_and_runs_nothing_again(
    st: store.Store, probe: Probe
) -> None:
    launcher = launcher_for(st, probe, {"wf": SPEC})
    first = await launcher.launch(request(1, key="hook:abc"))
    again = await launcher.launch(request(1, key="hook:abc"))
    assert again.run_id == first.run_id and again.duplicate
    await launcher.wait(first.run_id, 10)
    assert probe.steps_called() == ["a", "b"]
    assert len((await st.list_runs()).runs) == 1
    await launcher.aclose()


async def test_bad_inputs_and_unknown_workflows_are_refused_before_anything_is_recorded(
    st: store.Store, probe: Probe
) -> None:
    launcher = launcher_for(st, probe, {"wf": SPEC})
    with pytest.raises(errors.InputError) as caught:
        await launcher.launch(RunRequest("shop", "wf", {"n": "many"}, "webhook", "x"))
    assert "Workflow/wf" in str(caught.value) and "n" in str(caught.value)
    with pytest.raises(inprocess.UnknownWorkflow, match="no Workflow shop/nope"):
        await launcher.launch(request(1, name="nope"))
    assert (await st.list_runs()).runs == ()
    await launcher.aclose()


async def test_no_more_than_concurrency_runs_execute_at_once(st: store.Store, probe: Probe) -> None:
    slow = {"steps": [{"id": "s", "uses": "t.call", "with": {"value": 1, "sleep": 0.05}}]}
    launcher = launcher_for(st, probe, {"slow": slow}, concurrency=3)
    started = [
        await launcher.launch(RunRequest("shop", "slow", {}, "api", "me")) for _ in range(12)
    ]
    outcomes = await asyncio.gather(*(launcher.wait(s.run_id, 20) for s in started))
    assert all(o is not None and o.phase == "Succeeded" for o in outcomes)
    assert probe.max_running == 3
    await launcher.aclose()


async def test_a_launcher_stopped_mid_run_resumes_it_at_the_next_start(
    st: store.Store, probe: Probe
) -> None:
    spec = {
        "steps": [
            {"id": "a", "uses": "t.call", "with": {"value": 1}},
            {"id": "b", "uses": "t.call", "with": {"value": 2, "sleep": 30}},
            {"id": "c", "uses": "t.call", "with": {"value": 3}},
        ]
    }
    launcher = launcher_for(st, probe, {"wf": spec})
    started = await launcher.launch(RunRequest("shop", "wf", {}, "webhook", "x"))
    while probe.steps_called() != ["a", "b"]:
        await asyncio.sleep(0.01)
    await launcher.aclose(grace=0)  # b is stopped unrecorded
    assert await st.unended() == [started.run_id]

    again = Probe()
    resumed = launcher_for(st, again, {"wf": spec})
    assert await resumed.start() == 1
    # b runs again (it never finished), a does not; b sleeps 30 s: interrupt and check.
    while again.steps_called() != ["b"]:
        await asyncio.sleep(0.01)
    await resumed.aclose(grace=0)
    assert again.steps_called() == ["b"]


async def test_a_resumed_run_gets_its_secret_input_back_and_no_view_ever_shows_it(
    tmp_path: Path, probe: Probe
) -> None:
    """The store keeps a secret input sealed: a launcher that resumes the run opens it with
    the same key; one without the key fails the run saying so, never runs it with the marker."""
    secret = "pw-7Hq-never-shown"
    spec = {
        "inputs": {"password": {"type": "string", "secret": True}},
        "steps": [
            {"id": "a", "uses": "t.call", "with": {"value": 1, "sleep": 2}},
            {"id": "b", "uses": "t.call", "with": {"value": "${ inputs.password }"}},
        ],
    }
    url = f"sqlite:///{tmp_path}/runs.db"
    st = await store.open_store(url, subject_key=b"k1")
    launcher = launcher_for(st, probe, {"wf": spec})
    started = await launcher.launch(RunRequest("shop", "wf", {"password": secret}, "api", "ann"))
    while probe.steps_called() != ["a"]:
        await asyncio.sleep(0.01)
    await launcher.aclose(grace=0)
    detail = await st.get_run(started.run_id)
    assert detail is not None and detail.inputs == {"password": {"redacted": True}}
    await st.aclose()
    assert secret.encode() not in (tmp_path / "runs.db").read_bytes()

    keyless = await store.open_store(url, subject_key=b"")
    blind = Probe()
    refused = launcher_for(keyless, blind, {"wf": spec})
    await refused.start()
    outcome = await refused.wait(started.run_id, 10)
    assert outcome is not None and outcome.phase == "Failed"
    assert "cannot open them (no key)" in str(outcome.error)
    assert "AUTOFLOW_STORE_SUBJECT_KEY" in str(outcome.error)
    assert blind.steps_called() == []
    await refused.aclose()
    await keyless.aclose()

    # the same journal, resumed with the key (a fresh copy of the store before that failure)
    st = await store.open_store(f"sqlite:///{tmp_path}/again.db", subject_key=b"k1")
    probe2, probe3 = Probe(), Probe()
    first = launcher_for(st, probe2, {"wf": spec})
    again = await first.launch(RunRequest("shop", "wf", {"password": secret}, "api", "ann"))
    while probe2.steps_called() != ["a"]:
        await asyncio.sleep(0.01)
    await first.aclose(grace=0)
    resumed = launcher_for(st, probe3, {"wf": spec})
    assert await resumed.start() == 1
    outcome = await resumed.wait(again.run_id, 60)
    assert outcome is not None and outcome.phase == "Succeeded", outcome
    assert [c.value for c in probe3.calls if c.step == "b"] == [secret]
    shown = await st.get_run(again.run_id)  # b's output is the value: the workflow said so
    assert shown is not None and shown.inputs == {"password": {"redacted": True}}
    await resumed.aclose()
    await st.aclose()


async def test_events_give_every_transition_in_order_and_replay_after_an_id(
    st: store.Store, probe: Probe
) -> None:
    hub = events.RunEvents()
    launcher = launcher_for(st, probe, {"wf": SPEC}, hub=hub)
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in hub.subscribe(namespace="shop"):
            seen.append(event)
            if event["kind"] == "end":
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    started = await launcher.launch(request(2))
    await asyncio.wait_for(follower, 10)
    assert [(e["kind"], e.get("step"), e["phase"]) for e in seen] == [
        ("run", None, "Pending"),
        ("run", None, "Running"),
        ("step", "a", "Running"),
        ("step", "a", "Succeeded"),
        ("step", "b", "Running"),
        ("step", "b", "Succeeded"),
        ("end", None, "Succeeded"),
    ]
    assert all(e["runId"] == started.run_id and e["workflow"] == "wf" for e in seen)
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # A client reconnecting with Last-Event-ID gets what came after it, nothing before.
    assert [e["id"] for e in hub.replay(run_id=started.run_id, after=ids[2])] == ids[3:]
    again: list[int] = []
    async for event in hub.subscribe(run_id=started.run_id, after=ids[4]):
        again.append(event["id"])
        if event["kind"] == "end":
            break
    assert again == ids[5:]
    assert hub.replay(namespace="elsewhere") == []
    await launcher.aclose()
