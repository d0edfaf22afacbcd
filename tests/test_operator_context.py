"""The operator keeps no module-level state: importing it does nothing, ``main`` reads the
settings once, and the handlers get what they share through kopf's ``memo``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import kopf
from kopf._core.intents import handlers as kopf_handlers

from autoflow.operator import handlers, integration_handlers, schedule_handlers, workflow_handlers
from autoflow.operator import settings as settings_mod

IMPORT_WITH_BROKEN_ENV = textwrap.dedent(
    """
    import kopf

    registry = kopf.get_default_registry()
    subs = (registry._activities, registry._indexing, registry._watching,
            registry._spawning, registry._changing, registry._webhooks)
    kopfs_own = [h.id for sub in subs for h in sub.get_all_handlers()]  # its login handler
    from autoflow.operator import handlers, integration_handlers, schedule_handlers, webhook
    from autoflow.operator import workflow_handlers
    print([h.id for sub in subs for h in sub.get_all_handlers()] == kopfs_own)
    """
)


def test_importing_the_handlers_reads_no_settings_and_registers_nothing() -> None:
    env = {
        **os.environ,
        "AUTOFLOW_HANDLER_BACKOFF_SECONDS": "not a number",
        "AUTOFLOW_PROBE_CONCURRENCY": "not a number",
        "AUTOFLOW_INTEGRATION_TICK_SECONDS": "not a number",
    }
    done = subprocess.run(
        [sys.executable, "-P", "-c", IMPORT_WITH_BROKEN_ENV],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_register_takes_the_back_off_and_tick_from_the_settings() -> None:
    registry = kopf.OperatorRegistry()
    settings = settings_mod.Settings(handler_backoff_seconds=7, integration_tick_seconds=3)
    for module in (handlers, workflow_handlers, schedule_handlers, integration_handlers):
        module.register(registry, settings)
    changing = {str(h.id): h for h in registry._changing.get_all_handlers()}
    spawning = {str(h.id): h for h in registry._spawning.get_all_handlers()}
    assert changing["run_created"].backoff == 7
    assert changing["run_cancelled/spec.cancel"].backoff == 7
    assert spawning["fire"].backoff == 7
    tick = spawning["integration_tick"]
    assert isinstance(tick, kopf_handlers.TimerHandler)
    assert tick.interval == 3
    assert {h.id for h in registry._activities.get_all_handlers()} == {"startup", "cleanup"}
