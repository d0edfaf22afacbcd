"""``autoflow integrations authorize``: grant an authorization_code Integration its tokens.

The user's browser does the granting; this command does the rest, and never prints a token
unless asked for a Secret manifest::

    listen on http://127.0.0.1:PORT/callback (the redirect URI to register at the provider)
      ─► print the authorize URL (with state and a PKCE S256 challenge), open a browser
      ─► the provider redirects back with ?code=...&state=... (state checked)
      ─► exchange the code (+ code_verifier) at the token endpoint (runners.access.oauth2)
      ─► --secrets FILE: the tokens under the integration's name (file mode 0600), for
         ``autoflow run --secrets FILE``
         --print-secret: a Secret manifest for ``kubectl apply -f -``, named
         oauth2.tokenSecretName (or the secretRef Secret, then with clientSecret too)

The client secret is read as ``autoflow run`` reads it: the ``--secrets`` file's entry for
the integration, else ``AUTOFLOW_SECRET_<INTEGRATION>_CLIENTSECRET``. ``register`` runs for
every ``autoflow`` command, so this module imports the runners (authlib, httpx) only when the
command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import html
import os
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from autoflow.crds import errors

if TYPE_CHECKING:
    import http.server

    from autoflow.crds import integration
    from autoflow.runners.access import oauth2

DEFAULT_PORT = 8976
CALLBACK_PATH = "/callback"
DEFAULT_WAIT_SECONDS = 300.0


def register(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``authorize`` to the ``autoflow integrations`` subcommands."""
    p = group.add_parser(
        "authorize",
        help="grant an OAuth2 authorization_code Integration its tokens (opens a browser)",
        description=(
            "Authorize an Integration whose oauth2.grantType is authorization_code: sign in at "
            "the provider in a browser, and the tokens are written to --secrets FILE (for "
            "autoflow run) and/or printed as a Secret manifest (--print-secret, for kubectl "
            f"apply -f -). Register http://127.0.0.1:PORT{CALLBACK_PATH} as a redirect URI "
            "of the OAuth2 client at the provider."
        ),
    )
    p.set_defaults(parser_=p)  # usage errors show this command's usage
    p.add_argument("file", metavar="FILE", help="a manifest file holding the Integration")
    p.add_argument("--name", help="which Integration, when the file holds several")
    p.add_argument(
        "--secrets",
        metavar="SECRETS_FILE",
        help="YAML secrets file (as for autoflow run): the client secret is read from it and "
        "the tokens are written into it (created with mode 0600)",
    )
    p.add_argument(
        "--print-secret",
        action="store_true",
        help="print a Kubernetes Secret manifest holding the tokens to stdout",
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"loopback port of the redirect URI (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the browser to come back (default {DEFAULT_WAIT_SECONDS:g})",
    )


def run(args: argparse.Namespace, *, open_url: Callable[[str], Any] | None = None) -> int:
    """Carry out ``autoflow integrations authorize``; errors are raised as AutoflowErrors.

    ``open_url`` opens the authorize URL (default: the system's browser; tests pass a
    function that follows the redirects as a browser would).
    """
    import asyncio
    import webbrowser

    import yaml

    from autoflow.runners.access import oauth2, redact
    from autoflow.runners.local import run as local

    if not args.secrets and not args.print_secret:
        raise errors.InputError(
            "say where the tokens go: --secrets FILE (for autoflow run) and/or --print-secret "
            "(a Secret manifest for the cluster)"
        )
    intg = _choose(args.file, args.name)
    name = intg.metadata.name or ""
    spec = intg.spec.oauth2
    assert spec is not None
    if args.print_secret:
        _secret_name(intg)  # fails now, before the browser, when there is nowhere to put it
    values = _read_secrets(args.secrets) if args.secrets else {}
    provider = local.LocalIntegrations([intg], values)
    client_secret = provider.secrets(name, redact.Redactor()).get(oauth2.CLIENT_SECRET)
    state, verifier = oauth2.new_state(), oauth2.new_code_verifier()
    with _listen(args.port) as callback:
        redirect_uri = f"http://127.0.0.1:{callback.port}{CALLBACK_PATH}"
        url = oauth2.authorization_url(spec, redirect_uri, state=state, code_verifier=verifier)
        _say(
            f"Authorize integration {name!r}: open this URL in a browser and sign in\n"
            f"  {url}\n(waiting for the redirect to {redirect_uri})"
        )
        if open_url is not None:
            open_url(url)
        elif not args.no_browser:
            webbrowser.open(url)
        answer = callback.wait(args.timeout)
    code = _code_of(answer, state, name)
    token = asyncio.run(
        oauth2.exchange_code(
            spec, client_secret, code, redirect_uri, verifier, integration_name=name
        )
    )
    expiry = oauth2.format_time(token.expires_at) if token.expires_at else "an unknown time"
    refresh = "with a refresh token" if token.refresh_token else "without a refresh token"
    _say(f"Integration {name!r} is authorized: an access token until {expiry}, {refresh}.")
    if args.secrets:
        write_tokens(args.secrets, name, token)
        _say(f"Tokens written to {args.secrets} (under {name!r}).")
    if args.print_secret:
        manifest = secret_manifest(intg, token, client_secret)
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
        sys.stdout.flush()
    return 0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _choose(path: str, name: str | None) -> integration.Integration:
    from autoflow.crds import integration
    from autoflow.runners.definitions import loader

    found = [r for r in loader.load_file(path) if isinstance(r, integration.Integration)]
    if name is not None:
        found = [i for i in found if i.metadata.name == name]
    where = errors.Where(file=path)
    if not found:
        named = f" named {name!r}" if name else ""
        raise errors.ManifestError(f"no Integration{named} in the file", where)
    if len(found) > 1:
        names = ", ".join(i.metadata.name or "?" for i in found)
        raise errors.ManifestError(f"several Integrations ({names}); choose one with --name", where)
    intg = found[0]
    where = where.replace(resource=f"Integration/{intg.metadata.name}")
    spec = intg.spec.oauth2
    if spec is None or spec.grant_type != "authorization_code":
        raise errors.ManifestError(
            "only an Integration with oauth2.grantType authorization_code is authorized in a "
            "browser (client_credentials needs no authorization: its runs fetch tokens)",
            where.replace(field="spec.oauth2.grantType"),
        )
    if not spec.authorize_url:
        raise errors.ManifestError(
            "the authorization_code grant needs oauth2.authorizeUrl",
            where.replace(field="spec.oauth2.authorizeUrl"),
        )
    return intg


def _read_secrets(path: str) -> dict[str, dict[str, str]]:
    from autoflow.runners.local import run as local

    return local.read_secrets_file(path) if os.path.exists(path) else {}


def _code_of(answer: dict[str, str], state: str, name: str) -> str:
    where = errors.Where(resource=f"Integration/{name}", field="oauth2.authorizeUrl")
    if not hmac.compare_digest(answer.get("state", ""), state):
        raise errors.PermanentError(
            "the redirect came back with a different state: it does not answer this "
            "request (a stale browser tab, or a forged link); run the command again",
            where,
        )
    if "error" in answer:
        description = answer.get("error_description", "")
        said = f"{answer['error']}: {description}" if description else answer["error"]
        raise errors.PermanentError(f"the provider refused the authorization ({said})", where)
    code = answer.get("code")
    if not code:
        raise errors.PermanentError("the redirect brought no authorization code", where)
    return code


def write_tokens(path: str, name: str, token: oauth2.Token) -> None:
    """Put ``token`` under ``name`` in the secrets file, keeping its other entries and keys.

    The file is replaced whole (a temporary file renamed over it) and is readable by its
    owner only.
    """
    import yaml

    from autoflow.runners.access import oauth2

    data: dict[str, dict[str, str]] = _read_secrets(path)
    entry = {k: v for k, v in data.get(name, {}).items() if k not in oauth2.TOKEN_KEYS}
    entry.update({k: v for k, v in token.to_secret_data().items() if v})
    data[name] = entry
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".secrets-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _secret_name(intg: integration.Integration) -> str:
    spec = intg.spec.oauth2
    ref = intg.spec.secret_ref
    if spec is not None and spec.token_secret_name:
        return spec.token_secret_name
    if ref is not None:
        return ref.name
    raise errors.ManifestError(
        "--print-secret needs oauth2.tokenSecretName (or a secretRef) to name the Secret",
        errors.Where(resource=f"Integration/{intg.metadata.name}", field="spec.oauth2"),
    )


def secret_manifest(
    intg: integration.Integration, token: oauth2.Token, client_secret: str
) -> dict[str, Any]:
    """The Secret the tokens go to in a cluster: ``oauth2.tokenSecretName``, which the
    operator keeps refreshing, or else the ``secretRef`` Secret (so with ``clientSecret``,
    which applying the manifest would otherwise remove)."""
    from autoflow.runners.access import oauth2

    spec = intg.spec.oauth2
    name = _secret_name(intg)
    data = {k: v for k, v in token.to_secret_data().items() if v}
    if spec is None or not spec.token_secret_name:
        data = {oauth2.CLIENT_SECRET: client_secret, **data}
    metadata: dict[str, Any] = {"name": name}
    if intg.metadata.namespace:
        metadata["namespace"] = intg.metadata.namespace
    metadata["labels"] = {
        "app.kubernetes.io/managed-by": "autoflow",
        "autoflow.dev/integration": intg.metadata.name or "",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": data,
    }


class _Callback:
    """The loopback HTTP server the provider's redirect comes back to; one answer, then done."""

    def __init__(self, httpd: http.server.HTTPServer) -> None:
        self.httpd = httpd
        self.answer: dict[str, str] | None = None
        self.done = threading.Event()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def wait(self, timeout: float) -> dict[str, str]:
        if not self.done.wait(timeout):
            raise errors.PermanentError(
                f"no redirect came back within {timeout:g} s: was the URL opened, and is "
                f"http://127.0.0.1:{self.port}{CALLBACK_PATH} a redirect URI of the client?"
            )
        assert self.answer is not None
        return self.answer


@contextlib.contextmanager
def _listen(port: int) -> Iterator[_Callback]:
    import http.server

    callback: _Callback

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path != CALLBACK_PATH or callback.done.is_set():
                self._page(404, "Not the Autoflow authorization callback.")
                return
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
            callback.answer = {k: v[0] for k, v in query.items()}
            ok = "code" in callback.answer
            text = (
                "Autoflow received the authorization; you can close this tab."
                if ok
                else "The authorization did not succeed; see the terminal."
            )
            self._page(200 if ok else 400, text)
            callback.done.set()

        def _page(self, status: int, text: str) -> None:
            body = f"<!doctype html><title>Autoflow</title><p>{html.escape(text)}</p>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query holds the code: not for the terminal

    try:
        httpd = http.server.HTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise errors.InputError(
            f"cannot listen on 127.0.0.1:{port} for the redirect ({exc.strerror}); choose "
            "another --port and register its redirect URI at the provider"
        ) from None
    callback = _Callback(httpd)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield callback
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
