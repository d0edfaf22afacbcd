"""``autoflow operator``: run the kopf operator with Autoflow's handlers.

One active operator per cluster is kopf's peering model; ``--standalone`` (the default for a
single replica) skips peering. Nothing on a run's execution path waits for the operator.

Clusterwide unless namespaces are given (``--namespace``, ``AUTOFLOW_NAMESPACES``); either way
the operator needs only the RBAC in ``config/rbac/operator.yaml`` (namespaced: the same rules
in a Role per namespace). Logs are JSON lines: Autoflow's from ``AUTOFLOW_LOG_LEVEL`` up,
kopf's warnings and errors (everything at debug).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from autoflow.operator import settings as settings_mod


def _kopf_record(record: logging.LogRecord) -> bool:
    """kopf's records carry its whole settings object; the object reference is enough."""
    record.__dict__.pop("settings", None)
    return True


def main(namespaces: list[str] | None = None, standalone: bool = True) -> int:
    import kopf

    from autoflow.operator import (
        context,
        handlers,
        integration_handlers,
        schedule_handlers,
        workflow_handlers,
    )
    from autoflow.runners import logs

    settings = settings_mod.Settings()
    # kopf's own registry: it holds kopf's login handler (credentials from the kubeconfig).
    registry = kopf.get_default_registry()
    handlers.register(registry, settings)
    workflow_handlers.register(registry, settings)
    schedule_handlers.register(registry, settings)
    integration_handlers.register(registry, settings)
    if settings.webhook_port:
        from autoflow.operator import webhook

        webhook.register(registry, settings)
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    logs.configure("json", level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(_kopf_record)
    kopf_log = logging.getLogger("kopf")
    kopf_log.handlers[:] = [handler]
    kopf_log.setLevel(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))
    kopf_log.propagate = False
    chosen = namespaces or settings.namespace_list()
    asyncio.run(
        kopf.operator(
            registry=registry,
            memo=kopf.Memo({context.SETTINGS: settings}),
            standalone=standalone,
            clusterwide=not chosen,
            namespaces=chosen or [],
        )
    )
    return 0
