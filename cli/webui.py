"""``autoflow webui``: the web API (and the front end, when built in) on uvicorn.

Two modes:

- cluster (default): Kubernetes from the in-cluster ServiceAccount or ``--kubeconfig``; sign-in
  by OIDC (``webui.settings``: ``AUTOFLOW_WEBUI_OIDC_*``), every Kubernetes call made as the
  signed-in person; run history from ``AUTOFLOW_STORE_URL``.
- workspace (``--dir DIR``): a directory of YAML files, SQLite in ``DIR/.autoflow``, runs in
  this process; a random access token printed at start (the printed URL signs the browser in).
  Loopback only by default; ``--host`` beyond loopback still requires the token on every
  request.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Any

from autoflow.cli import args as args_mod


def register(sub: args_mod.Subcommands) -> None:
    p = args_mod.command(sub, "webui", "serve the web UI and its API (cluster, or --dir workspace)")
    p.add_argument("--dir", metavar="DIR", help="workspace mode: Workflows as YAML files in DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    p.add_argument(
        "--kubeconfig", help="cluster mode: kubeconfig (default: in-cluster or $KUBECONFIG)"
    )
    p.set_defaults(handler=main)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(args: argparse.Namespace) -> int:
    import asyncio

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette import applications, routing

    from autoflow.runners import store as store_mod
    from autoflow.webui import settings as settings_mod
    from autoflow.webui.api import Settings, auth, create_app, oidc

    conf = settings_mod.WebSettings()
    backend: Any
    note = ""
    if args.dir:
        from autoflow.webui import workspace

        backend = await workspace.WorkspaceBackend.open(args.dir)
        token = auth.TokenAuth(conf.token.get_secret_value() or None, user=backend.user)
        authenticator: Any = token
        note = f"?token={token.token}"
        if not is_loopback(args.host):
            print(
                f"listening on {args.host}: beyond loopback; every request needs the access "
                "token (keep the URL private, put TLS in front)",
                file=sys.stderr,
            )
    else:
        from autoflow.runners import kube
        from autoflow.webui import cluster

        if not conf.oidc_issuer or not conf.oidc_client_id:
            print(
                "cluster mode signs people in by OIDC: set AUTOFLOW_WEBUI_OIDC_ISSUER, "
                "AUTOFLOW_WEBUI_OIDC_CLIENT_ID and AUTOFLOW_WEBUI_OIDC_CLIENT_SECRET "
                "(or use --dir DIR for a local workspace)",
                file=sys.stderr,
            )
            return 2
        if not conf.store_url:
            print("cluster mode reads run history from AUTOFLOW_STORE_URL", file=sys.stderr)
            return 2
        runs = await store_mod.open_store(conf.store_url)
        backend = cluster.ClusterBackend(
            kube.Client.from_config(args.kubeconfig), runs, namespaces=conf.namespace_list()
        )
        authenticator = oidc.OidcAuth(
            oidc.OidcSettings(
                issuer=conf.oidc_issuer,
                client_id=conf.oidc_client_id,
                client_secret=conf.oidc_client_secret.get_secret_value(),
                session_key=conf.session_key.get_secret_value(),
                scopes=conf.oidc_scopes,
                username_claim=conf.oidc_username_claim,
                groups_claim=conf.oidc_groups_claim,
                user_prefix=conf.oidc_user_prefix,
                group_prefix=conf.oidc_group_prefix,
                session_lifetime=conf.session_lifetime,
                secure_cookie=not conf.insecure_cookie,
                redirect_url=conf.redirect_url,
            )
        )
        if not conf.session_key.get_secret_value():
            print(
                "AUTOFLOW_WEBUI_SESSION_KEY is not set: sessions end when this process does "
                "and are not shared between replicas",
                file=sys.stderr,
            )
        note = "api/auth/login"
    api = create_app(backend, Settings(authenticator=authenticator))
    app = applications.Starlette(routes=[routing.Mount("/api", app=api)])
    if isinstance(authenticator, auth.TokenAuth):
        # The printed URL opens the front end at /: the token becomes the cookie there too.
        from starlette.middleware.base import BaseHTTPMiddleware

        app.add_middleware(BaseHTTPMiddleware, dispatch=authenticator.middleware)
    try:
        from autoflow.webui import static

        static.mount(app)
    except ImportError:
        pass
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    )
    import asyncio

    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    try:
        if serving.done():
            serving.result()
            return 1
        port = server.servers[0].sockets[0].getsockname()[1]
        host = args.host if args.host not in ("0.0.0.0", "::") else "127.0.0.1"
        print(f"autoflow webui ({backend.mode}): http://{host}:{port}/{note}", flush=True)
        await serving
    finally:
        await backend.aclose()
    return 0
