"""Where a declarative action sends its requests, and with which credentials.

From the step's Integration (``ctx.settings`` and ``ctx.secrets``) and the definition::

    secrets ─ the auth scheme's {key} templates ─► headers / query parameters, and a
              redaction.Redactor holding every secret value and what is derived from them
    settings.baseUrl, or the definition's baseUrl with {setting} placeholders filled
              (URL-encoded), or the secret URL itself (auth scheme url) ─► the base URL
    ─► http_auth.Credentials bound to the base URL's origin: a next-page link or redirect
       to another host never carries them

Secrets are read only through ``ctx.secrets`` and only the keys the scheme names, so the
Integration's ``secretRef.keys`` can list exactly those.
"""

from __future__ import annotations

import base64

import httpx

from autoflow.connectors import sdk
from autoflow.connectors.declarative import format as fmt
from autoflow.connectors.declarative import templates
from autoflow.connectors.sdk import http_auth, redaction
from autoflow.crds import errors

# In a webhook URL that is a secret, path segments and query values this long are secret too
# (tokens and signatures are; ids, usually 17-19 digits, stay readable).
_SECRET_PART_CHARS = 24


def read_secrets(definition: fmt.Definition, ctx: sdk.ActionContext) -> dict[str, str]:
    """The secret keys the auth scheme names, read from the step's Integration."""
    return {key: ctx.secrets.get(key) for key in definition.secret_keys()}


def settings_for(
    definition: fmt.Definition, ctx: sdk.ActionContext, template: str
) -> dict[str, str]:
    """The Integration settings a template names, defaults filled in."""
    values: dict[str, str] = {}
    for name in templates.placeholders(template):
        setting = definition.settings.get(name, fmt.Setting())
        value = ctx.settings.get(name, setting.default)
        if value is None:
            raise errors.InvalidSettingsError(
                f"the {definition.title} connector needs settings.{name} "
                f"({setting.description or 'see the connector docs'})",
                integration_where(ctx, f"settings.{name}"),
            )
        values[name] = templates.as_text(value)
    return values


def base_url(
    definition: fmt.Definition, ctx: sdk.ActionContext, secrets: dict[str, str]
) -> httpx.URL:
    """The URL every action path is appended to."""
    auth = definition.auth
    if isinstance(auth, fmt.UrlAuth):
        raw = templates.render_text(auth.url, secrets)
        shown = "the webhook URL secret"
        field = f"secret {', '.join(sorted(templates.placeholders(auth.url)))}"
    elif ctx.settings.get("baseUrl"):
        raw = str(ctx.settings["baseUrl"]).strip()
        shown, field = repr(raw), "settings.baseUrl"
    else:
        template = definition.base_url or ""
        raw = templates.render_text(template, settings_for(definition, ctx, template), quote=True)
        shown, field = repr(raw), "settings"
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host or "%" in url.host:
        raise errors.InvalidSettingsError(
            f"{shown} is not an http:// or https:// URL", integration_where(ctx, field)
        )
    return url


def credentials(
    definition: fmt.Definition, base: httpx.URL, secrets: dict[str, str]
) -> http_auth.Credentials:
    """What the auth scheme adds to requests bound for ``base``'s origin."""
    auth = definition.auth
    if isinstance(auth, fmt.NoAuth):
        return http_auth.Credentials()
    values = [value for value in secrets.values() if value]
    headers: dict[str, str] = {}
    query: dict[str, str] = {}

    def fill(template: str) -> str:
        return templates.render_text(template, secrets)

    if isinstance(auth, fmt.BearerAuth | fmt.OAuth2Auth):
        headers["Authorization"] = f"Bearer {fill(auth.token)}"
    elif isinstance(auth, fmt.BasicAuth):
        pair = base64.b64encode(f"{fill(auth.username)}:{fill(auth.password)}".encode())
        headers["Authorization"] = f"Basic {pair.decode('ascii')}"
        values.append(pair.decode("ascii"))
    elif isinstance(auth, fmt.HeaderAuth):
        headers[auth.name] = fill(auth.value)
        values.append(headers[auth.name])
    elif isinstance(auth, fmt.QueryAuth):
        query = {name: fill(template) for name, template in auth.params.items()}
    elif isinstance(auth, fmt.UrlAuth):
        values.extend(_secret_parts(base))
    return http_auth.Credentials(http_auth.origin(base), headers, query, redaction.Redactor(values))


def integration_where(ctx: sdk.ActionContext, field: str) -> errors.Where:
    name = ctx.integration.name if ctx.integration else "?"
    return errors.Where(resource=f"Integration/{name}", step=ctx.step_id, field=field)


def _secret_parts(url: httpx.URL) -> list[str]:
    """The parts of a secret URL that identify it: the long path segments and query values."""
    parts = [str(url), url.raw_path.decode("ascii", errors="replace"), *url.path.split("/")]
    parts += [value for _, value in url.params.multi_items()]
    return [part for part in parts if len(part) >= _SECRET_PART_CHARS]
