"""``autoflow operator``: run the kopf operator with Autoflow's handlers.

One active operator per cluster is kopf's peering model; ``--standalone`` (the default for a
single replica) skips peering. Nothing on a run's execution path waits for the operator.
"""

from __future__ import annotations

import asyncio

from autoflow.operator import settings as settings_mod


def main(namespaces: list[str] | None = None, standalone: bool = True) -> int:
    import kopf

    from autoflow.operator import handlers  # noqa: F401  (registers the handlers)
    from autoflow.runners import logs

    logs.configure("json")
    chosen = namespaces or settings_mod.Settings().namespace_list()
    asyncio.run(
        kopf.operator(
            standalone=standalone,
            clusterwide=not chosen,
            namespaces=chosen or [],
        )
    )
    return 0
