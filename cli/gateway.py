"""``autoflow gateway``: the webhook gateway (``runners.gateway``) on uvicorn.

In a cluster (no ``--dir``): Workflows are watched in ``--namespace`` (repeatable; all when
none) with read access, webhook secrets read from the Secrets their ``secretRef`` names,
and runs recorded in the run store (``--store`` / ``AUTOFLOW_STORE_URL``) and queued on NATS
JetStream (``--nats`` / ``AUTOFLOW_NATS_URL``) for ``autoflow worker`` processes when the
Workflow's ``runtime.mode`` is ``pool``; a ``job``-mode Workflow's webhook creates a
WorkflowRun (named from the delivery id, so a redelivery finds it) for the operator.

Locally (``--dir DIR``): the Workflows in DIR's YAML files, secrets from
``AUTOFLOW_SECRET_<NAME>_<KEY>`` or ``--secrets``, runs executed in this process (or queued on
JetStream with ``--nats``) into ``--store`` (default ``DIR/.autoflow/runs.db``). ``autoflow
serve`` is the same plus the web UI; this command is the gateway alone.

With NATS (``--nats`` / ``AUTOFLOW_NATS_URL``), in both modes the gateway also hosts the
Workflows' ``nats`` event triggers (``runners.pool.nats_triggers``): a durable JetStream
consumer per trigger, started and stopped as Workflows appear, change and go, each message
entering the same launch path as a webhook (pool: the store and the work queue; job: a
WorkflowRun). One consumer per trigger is shared by every gateway replica, so a message starts
one run whichever replica takes it.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands

ENV_STORE = "AUTOFLOW_STORE_URL"
ENV_NATS = "AUTOFLOW_NATS_URL"
STATE_DIR = ".autoflow"


def register(sub: Subcommands) -> None:
    p = args_mod.command(
        sub, "gateway", "the webhook gateway: authenticated HTTP requests start runs"
    )
    p.add_argument("--dir", metavar="DIR", help="serve the Workflows in DIR (no cluster)")
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="in a cluster: serve this namespace's Workflows (repeatable; default: all)",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--store", metavar="URL", help=f"the run store (default: ${ENV_STORE})")
    p.add_argument("--nats", metavar="URL", help=f"queue runs on NATS (default: ${ENV_NATS})")
    p.add_argument("--secrets", metavar="FILE", help="with --dir: the secrets file")
    p.add_argument("--concurrency", type=int, default=64, help="with --dir, no NATS: runs at once")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--kubeconfig", help="in a cluster: use this kubeconfig")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from autoflow.crds import errors

    if args.dir is not None and not os.path.isdir(args.dir):
        raise errors.InputError(f"{args.dir!r} is not a directory of Workflow files")
    if args.dir is None and not (args.store or os.environ.get(ENV_STORE)):
        raise errors.AutoflowError(f"no run store: pass --store URL or set {ENV_STORE}")
    if args.dir is None and not (args.nats or os.environ.get(ENV_NATS)):
        raise errors.AutoflowError(
            f"no NATS server: pass --nats URL or set {ENV_NATS} (runs go to autoflow worker "
            "processes), or serve a folder with --dir"
        )
    return asyncio.run(_serve(args))


def _store_url(args: argparse.Namespace) -> str:
    url = args.store or os.environ.get(ENV_STORE)
    if url:
        return str(url)
    state = os.path.join(os.path.abspath(args.dir), STATE_DIR)
    os.makedirs(state, exist_ok=True)
    return f"sqlite:///{os.path.join(state, 'runs.db')}"


async def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import logging
    import socket

    import uvicorn

    from autoflow.runners import store
    from autoflow.runners.gateway import server, sources
    from autoflow.runners.gateway import settings as settings_mod

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_mod.Settings()
    metrics_port = args.metrics_port
    if metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(metrics_port)
    st = await store.open_store(_store_url(args))
    closing: list[Any] = []
    try:
        files = _workspace(args)
        source, workflows = _source(args, settings, closing, files)
        launcher, nc = await _launcher(args, st, files, workflows, closing)
        if isinstance(source, sources.KubeSource):
            from autoflow.runners.gateway import jobs

            # Job-mode Workflows: a WorkflowRun each, run by the operator.
            launcher = jobs.ModeLauncher(
                launcher, jobs.WorkflowRunLauncher(source.client), workflows
            )
        app = server.create_app(source, launcher, st, settings)
        await source.start()
        if isinstance(source, sources.KubeSource):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(source.synced.wait(), 30)
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)  # the printed URL takes connections at once; uvicorn serves them
        closing.append(_closer(sock))
        base = f"http://{args.host}:{sock.getsockname()[1]}"
        for route in source.table.routes():
            methods = ", ".join(route.trigger.methods)
            print(f"webhook  {route.namespace}/{route.name}  {methods} {base}{route.url_path}")
        where = f"folder {args.dir}" if args.dir else "the cluster"
        print(
            f"autoflow gateway: {base} (Workflows of {where}, store {st.display_url})", flush=True
        )
        if isinstance(source, sources.DirectorySource):
            reloading = asyncio.create_task(_reload(source, files))
            closing.append(_canceller(reloading))
        # nats triggers: through the pool's NATS (--nats), or the nats Integration one names.
        from autoflow.runners.pool import nats_triggers

        if files is not None:
            integrations = files.provider
        else:
            from autoflow.runners.job import integrations as kube_integrations

            integrations = kube_integrations.per_namespace(source.client)
        events = nats_triggers.NatsTriggers(nc, launcher, integrations=integrations)
        following = asyncio.create_task(_follow(source, events))
        closing.append(events.aclose)
        closing.append(_canceller(following))
        config = uvicorn.Config(app, lifespan="off", log_level="warning")
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        for close in reversed(closing):
            with contextlib.suppress(Exception):
                await close()
        await st.aclose()
    return 0


def _source(
    args: argparse.Namespace, settings: Any, closing: list[Any], files: Any
) -> tuple[Any, Any]:
    """The route source and the Workflow lookup the launcher uses (``files``: the folder's
    workspace, or None in a cluster)."""
    from autoflow.runners.gateway import sources

    if files is not None:
        source = sources.DirectorySource(secrets=files.secrets, workspace=files)
        closing.append(source.stop)
        return source, source.workflow
    from autoflow.runners import kube

    client = kube.Client.from_config(args.kubeconfig)
    closing.append(client.aclose)
    namespaces = args.namespace or settings.namespace_list()
    kube_source = sources.KubeSource(client, namespaces, secret_ttl=settings.secret_ttl_seconds)
    closing.append(kube_source.stop)
    return kube_source, kube_source.workflow


def _workspace(args: argparse.Namespace) -> Any:
    """The folder's files (Workflows and Integrations), or None in a cluster."""
    if args.dir is None:
        return None
    from autoflow.runners.local import run as local_run
    from autoflow.runners.pool import workspace

    secrets = local_run.read_secrets_file(args.secrets) if args.secrets else None
    ws = workspace.Workspace(args.dir, secrets=secrets)
    ws.refresh()
    return ws


async def _launcher(
    args: argparse.Namespace, st: Any, files: Any, workflows: Any, closing: list[Any]
) -> tuple[Any, Any]:
    """The launcher, and the NATS connection when runs are queued on JetStream (else None)."""
    nats_url = args.nats or os.environ.get(ENV_NATS)
    if nats_url:
        from autoflow.runners.pool import jetstream

        nc = await jetstream.connect(nats_url, name="autoflow-gateway")
        closing.append(nc.drain)
        settings = jetstream.Settings.from_env(os.environ)
        launcher: Any = jetstream.JetStreamLauncher(st, workflows, nc, settings=settings)
        await launcher.start()
        closing.append(launcher.aclose)
        return launcher, nc
    from autoflow.runners.access import limits
    from autoflow.runners.pool import inprocess

    limiter = limits.from_env(os.environ)
    local = inprocess.InProcessLauncher(
        st,
        workflows,
        files.provider,
        concurrency=args.concurrency,
        environ=os.environ,
        limiter=limiter,
    )
    await local.start()
    closing.append(local.aclose)
    return local, None


async def _follow(source: Any, events: Any) -> None:
    """Keep the ``nats`` triggers' consumers those of the source's Workflows, now and as
    they change (checked every second; a sync without a change starts or stops nothing)."""
    import asyncio

    seen = -1
    shown: list[str] = []
    while True:
        if source.version != seen:
            seen = source.version
            events.sync(source.workflows())
            if events.consumers != shown:
                shown = events.consumers
                print(f"nats triggers: {', '.join(shown) or 'none'}", flush=True)
        await asyncio.sleep(1.0)


async def _reload(source: Any, files: Any) -> None:
    """A folder's files changed, were added or went: read them again (as autoflow serve);
    the routes and the Integrations runs use both follow."""
    import asyncio

    while True:
        await asyncio.sleep(1.0)
        if files.refresh():
            source.sync()
            print(f"workflows reloaded: {len(source.table.routes())} webhook(s)", flush=True)


def _canceller(task: Any) -> Any:
    async def cancel() -> None:
        task.cancel()

    return cancel


def _closer(sock: Any) -> Any:
    async def close() -> None:
        sock.close()

    return close
