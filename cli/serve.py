"""``autoflow serve [DIR]``: everything in one process on a laptop, no cluster, NATS or PostgreSQL.

One uvicorn server, one Starlette root app::

    /hooks/<namespace><path>   the webhook gateway (runners.gateway), routes from DIR's Workflows
    /api/...                   the web API (webui.api) over the workspace, when installed
    /                          the web UI's built front end (webui.static), when installed
    /healthz                   200 once serving

and beside it: Workflows and Integrations read from ``DIR/*.yaml`` (read again when a file
changes), the SQLite run store (default ``DIR/.autoflow/runs.db``; ``autoflow runs --store
sqlite:///DIR/.autoflow/runs.db list`` reads it), the in-process launcher (runs execute here,
``--concurrency`` at a time, unfinished ones resumed at start; runs recorded by ``autoflow
runs start`` on this store are taken up within a second), the store's retention (each
Workflow's ``retention``, applied every ``--retention-interval``), and the Workflows' ``nats``
triggers: through ``--nats URL``, or through the nats Integration a trigger names.
Credentials: ``AUTOFLOW_SECRET_<NAME>_<KEY>`` or ``--secrets`` (default
``DIR/.autoflow/secrets.yaml``, where the web UI writes them; read again when it changes). It
prints each trigger's URL.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands

STATE_DIR = ".autoflow"


def register(sub: Subcommands) -> None:
    p = args_mod.command(
        sub,
        "serve",
        "webhooks, runs and their history in one process: a folder of Workflows, no cluster",
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIR", help="default: .")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0: any)")
    p.add_argument(
        "--store", metavar="URL", help="the run store (default sqlite:///DIR/.autoflow/runs.db)"
    )
    p.add_argument("--secrets", metavar="FILE", help="Integration and webhook secrets file")
    p.add_argument("--concurrency", type=int, default=64, help="runs at once (default 64)")
    p.add_argument("--nats", metavar="URL", help="serve the Workflows' nats triggers from here")
    p.add_argument(
        "--retention-interval", default="1h", help="how often expired runs are purged (1h)"
    )
    p.add_argument("--no-ui", action="store_true", help="serve no web API and no web UI")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import asyncio

    from autoflow.crds import errors, meta

    if not os.path.isdir(args.directory):
        raise errors.InputError(f"{args.directory!r} is not a directory of Workflow files")
    if args.concurrency < 1:
        raise errors.InputError("--concurrency is at least 1")
    try:
        interval = meta.parse_duration(args.retention_interval)
    except ValueError as exc:
        raise errors.InputError(f"--retention-interval: {exc}") from None
    return asyncio.run(_serve(args, interval))


def _state_dir(args: argparse.Namespace) -> str:
    """DIR/.autoflow: the embedded store, its key and the secrets file."""
    return os.path.join(os.path.abspath(args.directory), STATE_DIR)


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    os.makedirs(_state_dir(args), exist_ok=True)
    return f"sqlite:///{os.path.join(_state_dir(args), 'runs.db')}"


def _secrets_file(args: argparse.Namespace) -> str:
    """The secrets file the workspace watches; one named by ``--secrets`` must be readable."""
    from autoflow.runners.local import run as local_run

    if args.secrets:
        local_run.read_secrets_file(args.secrets)  # missing or malformed: stop with why
        return str(args.secrets)
    return os.path.join(_state_dir(args), "secrets.yaml")


async def _serve(args: argparse.Namespace, retention_interval: float) -> int:
    import asyncio
    import contextlib
    import logging
    import signal

    import uvicorn
    from starlette import applications, responses, routing

    from autoflow.runners import store
    from autoflow.runners.access import limits
    from autoflow.runners.pool import inprocess, workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ws = workspace.Workspace(args.directory, secrets_file=_secrets_file(args))
    ws.refresh()
    st = await store.open_store(_store_url(args), subject_key=store.workspace_key(_state_dir(args)))
    limiter = limits.from_env(os.environ)
    launcher = inprocess.InProcessLauncher(
        st,
        ws.workflow,
        ws.provider,
        concurrency=args.concurrency,
        environ=os.environ,
        limiter=limiter,
    )
    resumed = await launcher.start()
    gateway_source = None
    triggers: Any = None

    def reload() -> None:
        """Reads the folder again if a file changed: routes, consumers and runs follow."""
        if ws.refresh():
            if gateway_source is not None:
                gateway_source.sync()  # the files were read once, by ws.refresh
            if triggers is not None:
                triggers.sync(ws.workflows.values())
            print(f"workflows reloaded: {len(ws.workflows)}", flush=True)

    routes: list[Any] = [
        routing.Route("/healthz", lambda request: responses.PlainTextResponse("ok")),
    ]
    gateway_server = _optional("autoflow.runners.gateway.server")
    gateway_sources = _optional("autoflow.runners.gateway.sources")
    if gateway_server is not None and gateway_sources is not None:
        gateway_source = gateway_sources.DirectorySource(secrets=ws.secrets, workspace=ws)
        await gateway_source.start()
        routes.append(
            routing.Mount("/hooks", app=gateway_server.create_app(gateway_source, launcher, st))
        )
    api_note = ""
    if not args.no_ui:
        mounted = _mount_web(args, st, launcher, reload)
        if mounted is not None:
            app_api, api_note = mounted
            routes.append(routing.Mount("/api", app=app_api))
    app = applications.Starlette(routes=routes)
    static = None if args.no_ui else _optional("autoflow.webui.static")
    if static is not None and hasattr(static, "mount"):
        static.mount(app)

    from autoflow.runners.pool import nats_triggers

    nc = None
    if args.nats:
        from autoflow.runners.pool import jetstream

        nc = await jetstream.connect(args.nats, name="autoflow-serve")
    # A trigger that names a nats Integration consumes through it, --nats or not.
    triggers = nats_triggers.NatsTriggers(nc, launcher, integrations=ws.provider)
    triggers.sync(ws.workflows.values())

    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = loop.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if serving.done():
        serving.result()  # the reason it could not listen
        return 1
    port = server.servers[0].sockets[0].getsockname()[1]
    host = args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1"
    base = f"http://{host}:{port}"
    _print_urls(ws, base, gateway_server is not None, st.display_url, resumed, api_note)

    async def housekeeping() -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(1.0)
            try:
                reload()
                await launcher.adopt_pending()
                if loop.time() - last_purge >= retention_interval:
                    last_purge = loop.time()
                    await _purge(st, ws)
            except store.StoreError as exc:
                logging.getLogger("autoflow.serve").warning("%s", exc.message)

    keeper = loop.create_task(housekeeping())
    try:
        await asyncio.wait(
            [serving, loop.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        server.should_exit = True
        keeper.cancel()
        with contextlib.suppress(BaseException):
            await serving
        await triggers.aclose()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        if gateway_source is not None:
            await gateway_source.stop()
        await launcher.aclose()  # the web API's backend shares the store: closed below
        await limiter.aclose()
        await st.aclose()
    return 0


def _optional(module: str) -> Any:
    """A module of a part this Autoflow may not have yet (the gateway, the web UI), or None."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


async def _purge(st: Any, ws: Any) -> None:
    from autoflow.runners import store

    policies = {}
    for (ns, name), wf in ws.workflows.items():
        if wf.spec.retention is not None:
            policies[(ns, name)] = store.Retention(
                None if wf.spec.retention.days is None else float(wf.spec.retention.days),
                wf.spec.retention.max_runs,
            )
    await st.purge_expired(policies=policies, actor="autoflow serve")


def _mount_web(
    args: argparse.Namespace, st: Any, launcher: Any, reload: Any
) -> tuple[Any, str] | None:
    """The web API over the workspace, if this Autoflow has it (webui.api, webui.workspace)."""
    api = _optional("autoflow.webui.api")
    ws_backend = _optional("autoflow.webui.workspace")
    if api is None or ws_backend is None:
        return None
    try:
        backend = ws_backend.WorkspaceBackend(
            args.directory, st, launcher=launcher, events=launcher.hub, on_change=reload
        )
        app = api.create_app(backend)
    except (TypeError, AttributeError) as exc:  # an older or newer web API: serve without it
        import logging

        logging.getLogger("autoflow.serve").warning("web API not mounted: %s", exc)
        return None
    token = getattr(getattr(getattr(app.state, "autoflow", None), "auth", None), "token", None)
    note = f"?token={token}" if token else ""
    return app, note


def _print_urls(
    ws: Any, base: str, gateway: bool, store_url: str, resumed: int, api_note: str
) -> None:
    print(f"autoflow serve: {base}  (store {store_url})", flush=True)
    if api_note:
        print(f"  web UI      {base}/{api_note}", flush=True)
    for (ns, name), wf in sorted(ws.workflows.items()):
        for trigger in wf.spec.triggers:
            if trigger.webhook is not None:
                url = f"{base}/hooks/{ns}{trigger.webhook.route(name)}"
                note = "" if gateway else "  (no gateway in this Autoflow)"
                print(f"  webhook     {ns}/{name}  POST {url}{note}", flush=True)
            elif trigger.nats is not None:
                print(f"  nats        {ns}/{name}  subject {trigger.nats.subject}", flush=True)
    if not ws.workflows and not ws.problems:
        print(f"  no Workflows in {ws.directory} yet: add a *.yaml file", flush=True)
    for problem in ws.problems:
        print(f"  problem     {problem}", flush=True)
    if resumed:
        print(f"  resumed {resumed} unfinished run(s)", flush=True)
