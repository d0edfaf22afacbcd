"""Shared test helpers: workflows from small dicts, and a connector that records its calls.

``server`` is a ``httpserver.Server`` on 127.0.0.1 for the test (it fails the test if a route
handler raised); ``saas(kind)`` starts a contract server from ``tests/saas`` on it, and the test
fails if the service saw a request that breaks its documented contract.

``make_workflow(spec)`` validates a spec dict into a Workflow. The ``probe`` fixture is a
``Probe``: a test connector named ``t`` registered in a fresh registry, whose actions record
every call (step, attempt, idempotency key, value) and how many calls were running at once::

    steps:
      - {id: a, uses: t.call, with: {value: 1, sleep: 0.01, failUntil: 2}}  # fails twice
      - {id: b, uses: t.meet, needs: [], with: {count: 2}}  # waits for 2 at once
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import httpserver
import pytest
from engine_probe import Call, CallParams, MeetParams, Probe, make_workflow
from saas import contract

S = TypeVar("S", bound=contract.Service)


@pytest.fixture
def server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        yield running
    assert not running.errors


@pytest.fixture
def saas(server: httpserver.Server) -> Iterator[Callable[[type[S]], S]]:
    """Starts contract servers on ``server``; a test ends with none of them violated."""
    started: list[contract.Service] = []

    def start(kind: type[S]) -> S:
        service = kind(server)
        started.append(service)
        return service

    yield start
    for service in started:
        assert service.violations == [], service.violations


__all__ = ["Call", "CallParams", "MeetParams", "Probe", "make_workflow"]


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture(scope="session")
def new_probe() -> type[Probe]:
    """For hypothesis tests, which need a fresh Probe per example (not per test)."""
    return Probe
