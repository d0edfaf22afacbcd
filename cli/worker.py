"""``autoflow worker``: a runner-pool worker (``runners.pool.jetstream``).

Consumes run ids from the JetStream work queue and executes each run with the run store as
its journal, ``--concurrency`` at a time. Integrations come from the Kubernetes API of the
worker's namespace access (in a cluster, or ``--kubeconfig``), or from manifest files
(``--files``, secrets from ``AUTOFLOW_SECRET_*`` or ``--secrets``) outside one. SIGTERM
interrupts the runs in flight (steps get ``--grace`` seconds) and hands them back to the
queue for another worker; SIGKILL leaves them to be redelivered after ``--ack-wait``.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import TYPE_CHECKING

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from autoflow.cli.args import Subcommands
    from autoflow.runners.pool.execute import IntegrationsFor

ENV_STORE = "AUTOFLOW_STORE_URL"
ENV_NATS = "AUTOFLOW_NATS_URL"


def register(sub: Subcommands) -> None:
    p = args_mod.command(
        sub, "worker", "a runner-pool worker: runs queued on NATS JetStream, journaled in the store"
    )
    p.add_argument("--store", metavar="URL", help=f"the run store (default: ${ENV_STORE})")
    p.add_argument("--nats", metavar="URL", help=f"the NATS server (default: ${ENV_NATS})")
    p.add_argument("--concurrency", type=int, default=16, help="runs executed at once (default 16)")
    p.add_argument(
        "--ack-wait",
        default="30s",
        help="silence after which a run goes to another worker (default 30s)",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=5,
        help="deliveries before a run is failed and dead-lettered (default 5)",
    )
    p.add_argument("--grace", default="10s", help="SIGTERM: time steps in flight get to finish")
    p.add_argument("--name", help="this worker's name in metrics (default: the host name)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--files",
        nargs="*",
        default=[],
        metavar="FILE",
        help="Integration manifests (instead of reading Integrations from Kubernetes)",
    )
    p.add_argument("--secrets", metavar="FILE", help="with --files: the secrets file")
    p.add_argument("--kubeconfig", help="read Integrations and Secrets with this kubeconfig")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from autoflow.crds import errors, meta

    store_url = args.store or os.environ.get(ENV_STORE)
    nats_url = args.nats or os.environ.get(ENV_NATS)
    if not store_url:
        raise errors.AutoflowError(f"no run store: pass --store URL or set {ENV_STORE}")
    if not nats_url:
        raise errors.AutoflowError(f"no NATS server: pass --nats URL or set {ENV_NATS}")
    if args.concurrency < 1 or args.max_deliveries < 1:
        raise errors.InputError("--concurrency and --max-deliveries are at least 1")
    try:
        ack_wait = meta.parse_duration(args.ack_wait)
        grace = meta.parse_duration(args.grace)
    except ValueError as exc:
        raise errors.InputError(f"--ack-wait/--grace: {exc}") from None
    return asyncio.run(_serve(args, store_url, nats_url, ack_wait, grace))


async def _serve(
    args: argparse.Namespace, store_url: str, nats_url: str, ack_wait: float, grace: float
) -> int:
    import asyncio
    import logging
    import signal

    from autoflow.runners import store
    from autoflow.runners.access import limits
    from autoflow.runners.pool import jetstream

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if os.environ.get("AUTOFLOW_DEBUG"):
        logging.getLogger("autoflow").setLevel(logging.DEBUG)
    name = args.name or socket.gethostname()
    if args.metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(args.metrics_port)
    st = await store.open_store(store_url)
    nc = await jetstream.connect(nats_url, name=f"autoflow-worker-{name}")
    integrations, closing = await _integrations(args)
    limiter = limits.from_env(os.environ)
    settings = jetstream.Settings.from_env(
        os.environ, ack_wait=ack_wait, max_deliveries=args.max_deliveries
    )
    worker = jetstream.Worker(
        st,
        nc,
        integrations,
        settings=settings,
        concurrency=args.concurrency,
        name=name,
        environ=os.environ,
        limiter=limiter,
        grace=grace,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    print(
        f"autoflow worker {name}: {args.concurrency} at a time, store {st.display_url}",
        flush=True,
    )
    try:
        await worker.run()
    finally:
        await nc.drain()
        await limiter.aclose()
        for close in closing:
            await close()
        await st.aclose()
    return 0


async def _integrations(
    args: argparse.Namespace,
) -> tuple[IntegrationsFor, list[Callable[[], Awaitable[None]]]]:
    """The Integration provider per namespace, and what to close at the end."""
    from autoflow.runners.local import run as local_run

    if args.files:
        found = []
        from autoflow.crds import integration
        from autoflow.runners.definitions import loader

        for path in args.files:
            found += [r for r in loader.load_file(path) if isinstance(r, integration.Integration)]
        secrets = local_run.read_secrets_file(args.secrets) if args.secrets else None
        local = local_run.LocalIntegrations(found, secrets)
        return (lambda namespace: local), []
    from autoflow.runners import kube
    from autoflow.runners.job import integrations as kube_integrations

    try:
        client = kube.Client.from_config(args.kubeconfig)
    except Exception as exc:  # no kubeconfig and not in a cluster: steps without one still run
        import logging

        logging.getLogger("autoflow.pool").warning(
            "no Kubernetes access (%s): steps that name an Integration will fail", exc
        )
        return (lambda namespace: None), []
    return kube_integrations.per_namespace(client), [client.aclose]
