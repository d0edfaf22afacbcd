"""The declarative connector engine: one YAML file per SaaS service, run by this one module.

``load(path)`` reads a definition (``declarative_format``) and returns a real
``sdk.Connector`` whose actions are generated: each gets a Params model built from its
declared parameters (so the engine validates before calling, ``autoflow connectors show``
prints its JSON Schema and the web UI renders its form) and a function that runs it::

    params ─ values (unset ones left out) ─ templates ─► method, URL, query, headers, body
    Integration secrets ─ auth scheme ─► http_auth.Credentials (bound to the base URL's origin)
    ─ http_core.Exchange ─► response, or a transport error (timeouts, size cap, redirects)
    ─ 4xx/5xx ─► the service's own message, retryable or permanent, retry_after from
                 Retry-After or the rate-limit reset header
    ─ output path ─► the step's output; paginated actions: {items, pages, truncated}

A definition's ``probe:`` block becomes the connector's health probe: an action without
parameters, sent once the same way, its 401/403 and 5xx read as refused credentials and an
unreachable service (``http_core.probe_error``).

The base URL is the definition's ``baseUrl`` with ``{setting}`` placeholders filled from the
Integration's settings, unless ``settings.baseUrl`` replaces it (a proxy, a sandbox, a test
server); with ``auth.scheme: url`` it is the secret itself (incoming webhooks). Credentials
are sent to that origin only, and everything returned or raised went through their redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import time
import urllib.parse
from typing import Any

import httpx
import pydantic

from autoflow.connectors import sdk
from autoflow.connectors.declarative import auth, templates
from autoflow.connectors.declarative import format as fmt
from autoflow.connectors.declarative import params as declarative_params
from autoflow.connectors.sdk import http_auth, http_core
from autoflow.crds import errors, meta


class DeclarativeConnector(sdk.Connector):
    """A connector generated from a definition file; ``definition`` is what it was made from."""

    def __init__(self, definition: fmt.Definition, source: str) -> None:
        super().__init__(definition.name, _describe(definition))
        self.definition = definition
        self.source = source
        scheme = type(definition.auth).__name__.removesuffix("Auth").lower()
        self.auth_scheme = definition.auth.scheme
        self.secret_keys = {
            key: f"read by the `{scheme}` auth scheme" for key in definition.secret_keys()
        }

    def settings_schema(self) -> dict[str, Any]:
        """The definition's settings, and ``baseUrl`` to point the connector elsewhere."""
        props: dict[str, Any] = {
            "baseUrl": {
                "type": "string",
                "description": "Another base URL for every action (a sandbox, a proxy).",
            }
        }
        required = []
        for name, setting in self.definition.settings.items():
            prop: dict[str, Any] = {"type": "string", "description": setting.description}
            if setting.default is None:
                required.append(name)
            else:
                prop["default"] = setting.default
            props[name] = prop
        return {"type": "object", "properties": props, "required": required}


class PageOutput(sdk.Output):
    """What a paginated action outputs: the items of every page it read."""

    items: list[Any]
    pages: int = pydantic.Field(description="How many pages were read.")
    truncated: bool = pydantic.Field(
        description="True when maxPages stopped the reading while the service had more."
    )


def load(path: str | pathlib.Path) -> DeclarativeConnector:
    """The connector defined in a YAML file; a bad file raises a ManifestError naming it."""
    file = pathlib.Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.ManifestError(
            f"cannot read connector definition: {exc.strerror or exc}",
            errors.Where(file=str(file)),
        ) from None
    return build(fmt.parse(text, str(file), expected_name=file.stem), str(file))


def build(definition: fmt.Definition, source: str = "<definition>") -> DeclarativeConnector:
    """A connector with one generated action per entry of ``definition.actions``."""
    connector = DeclarativeConnector(definition, source)
    for name, spec in definition.actions.items():
        paging = definition.paging(spec)
        params = declarative_params.params_model(definition, name, spec, paging, source)
        output: Any = PageOutput if paging is not None else Any
        description = spec.description.strip()
        if spec.docs:
            description = f"{description}\n\nAPI reference: {spec.docs}"
        connector.actions[name] = sdk.Action(
            connector=definition.name,
            name=name,
            func=_action_func(definition, spec, paging),
            params=params,
            output=pydantic.TypeAdapter(output),
            output_type=output,
            description=description,
            output_is_model=paging is not None,
        )
    if (probe := definition.probe) is not None:
        connector.health_probe = sdk.HealthProbe(
            _probe_func(definition, probe), _probe_summary(definition, probe)
        )
    return connector


def _probe_summary(definition: fmt.Definition, probe: fmt.Probe) -> str:
    """``GET /users/me (docs URL)``: what the probe calls, for the connector reference."""
    if probe.path:
        target = probe.path
    else:
        webhook = isinstance(definition.auth, fmt.UrlAuth)
        target = "the webhook URL" if webhook else "the base URL"
    if probe.query:
        target += "?" + urllib.parse.urlencode(templates.query_fields(probe.query))
    return f"{probe.method} {target}" + (f" ({probe.docs})" if probe.docs else "")


def _probe_func(definition: fmt.Definition, spec: fmt.Probe) -> sdk.ProbeFunc:
    action = spec.action()

    async def probe(integration: sdk.IntegrationInfo) -> str:
        async with sdk.probe_context(integration) as ctx:
            call = _Call(definition, action, None, ctx)
            try:
                response = await call.probe()
            except errors.ConnectorError as exc:
                raise http_core.probe_error(exc) from None
        if isinstance(definition.auth, fmt.UrlAuth):
            target = "the webhook URL"
        else:
            target = response.url.partition("?")[0]  # the query may hold masked credentials
        said = f"{definition.title}: {spec.method} {target} answered {response.status}"
        # The body went through the credentials' redactor in the exchange already.
        who = templates.describe(templates.pick(response.body, spec.identity or ""))
        return f"{said}, as {who}" if spec.identity and who else said

    return probe


def _action_func(
    definition: fmt.Definition, spec: fmt.Action, paging: fmt.AnyPaging | None
) -> sdk.ActionFunc:
    async def run(params: sdk.Params, ctx: sdk.ActionContext) -> Any:
        return await _Call(definition, spec, paging, ctx).run(params)

    return run


def _describe(definition: fmt.Definition) -> str:
    text = definition.description.strip() or definition.title
    parts = [f"{definition.family}", f"API docs {definition.docs}"]
    if keys := definition.secret_keys():
        parts.append(f"secrets: {', '.join(keys)}")
    needed = [k for k, s in definition.settings.items() if s.default is None]
    if needed:
        parts.append(f"settings: {', '.join(needed)}")
    return f"{text} ({'; '.join(parts)})"


# Running an action


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    """One request before it is built: the URL carries the whole query."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    body: Any = None  # JSON-like data; None sends no body

    def with_param(self, name: str, value: Any, place: fmt.Placement) -> _Request:
        if place == "body":
            body = dict(self.body) if isinstance(self.body, dict) else {}
            body[name] = value
            return dataclasses.replace(self, body=body)
        return dataclasses.replace(
            self, url=self.url.copy_set_param(name, templates.as_text(value))
        )

    def has_param(self, name: str, place: fmt.Placement) -> bool:
        if place == "body":
            return isinstance(self.body, dict) and name in self.body
        return name in self.url.params


class _Call:
    """One step running one declarative action."""

    # Set by run(), before any request: they need the Integration's secrets.
    base: httpx.URL
    credentials: http_auth.Credentials
    client: httpx.AsyncClient

    def __init__(
        self,
        definition: fmt.Definition,
        spec: fmt.Action,
        paging: fmt.AnyPaging | None,
        ctx: sdk.ActionContext,
    ) -> None:
        self.definition = definition
        self.spec = spec
        self.paging = paging
        self.ctx = ctx
        self.title = definition.title
        self.encoding = spec.body_encoding or definition.body_encoding
        # Errors are explained here, with the service's message, not by the exchange.
        self.options = http_core.Options(
            timeout=self._timeout(),
            fail_on_status=False,
            limit_field=None,
            type_field=None,
        )

    async def run(self, params: sdk.Params) -> Any:
        # Unset (null) parameters are left out, so their template parts are too.
        values = params.model_dump(mode="json", by_alias=True, exclude_none=True)
        max_pages = int(values.pop("maxPages", 1))
        await self._connect()
        request = self._first(values)
        if self.paging is None:
            body = (await self._send(request, 0)).body
            return templates.pick(body, self.spec.output) if self.spec.output else body
        return await self._paginate(self.paging, request, max_pages)

    async def probe(self) -> http_core.Response:
        """The action (a probe: no parameters, one page) sent once; its whole response."""
        await self._connect()
        return await self._send(self._first({}), 0)

    async def _connect(self) -> None:
        secrets = auth.read_secrets(self.definition, self.ctx)
        self.base = auth.base_url(self.definition, self.ctx, secrets)
        self.credentials = auth.credentials(self.definition, self.base, secrets)
        self.client = await self.ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)

    # Building requests

    def _first(self, values: dict[str, Any]) -> _Request:
        spec = self.spec
        path = templates.render_text(spec.path, values, quote=True)
        url = self._join(path)
        query = templates.render_entries(spec.query, values)
        if query:
            pairs = list(url.params.multi_items()) + templates.query_fields(query)
            url = url.copy_with(params=pairs)
        headers = httpx.Headers({"Accept": "application/json"})  # names case-insensitive
        for name, template in self.definition.headers.items():
            settings = auth.settings_for(self.definition, self.ctx, template)
            headers[name] = templates.render_text(template, settings)
        for name, value in templates.render_entries(spec.headers, values).items():
            headers[name] = templates.as_text(value)
        body: Any = templates.render(spec.body, values)
        if isinstance(spec.body, dict):
            body = templates.render_entries(spec.body, values)
        return _Request(
            spec.method,
            url,
            dict(headers.multi_items()),
            None if body is templates.MISSING else body,
        )

    def _join(self, path: str) -> httpx.URL:
        base_path = self.base.raw_path.partition(b"?")[0].rstrip(b"/")
        query = self.base.query
        # Placeholders are encoded already; this encodes what the template itself spells.
        tail = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=~").encode("ascii")
        joined = (base_path + tail) or b"/"
        return self.base.copy_with(raw_path=joined + (b"?" + query if query else b""))

    def _build(self, request: _Request, page: int) -> httpx.Request:
        headers = httpx.Headers(request.headers)
        content: bytes | None = None
        if request.body is not None:
            if self.encoding == "form":
                content = urllib.parse.urlencode(templates.form_fields(request.body)).encode()
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            else:
                content = json.dumps(request.body, ensure_ascii=False, allow_nan=False).encode()
                headers.setdefault("Content-Type", "application/json")
        idempotency = self.definition.idempotency_header
        if idempotency and request.method in http_core.UNSAFE_METHODS:
            key = self.ctx.idempotency_key
            headers.setdefault(idempotency, key if page == 0 else f"{key}:page{page + 1}")
        return self.client.build_request(
            request.method,
            request.url,
            headers=headers,
            content=content,
            timeout=self.options.timeout,
        )

    # Sending and errors

    async def _send(self, request: _Request, page: int) -> http_core.Response:
        exchange = http_core.Exchange(self.ctx, self.credentials, self.client, self.options)
        response = await exchange.run(self._build(request, page))
        if response.status >= 400:
            raise self._error(response)
        if response.body == "":
            response = dataclasses.replace(response, body=None)
        return response

    def _error(self, response: http_core.Response) -> errors.ConnectorError:
        style = self.definition.errors
        body = response.body
        if isinstance(body, str):
            with contextlib.suppress(ValueError):
                body = json.loads(body)
        found = (templates.describe(templates.pick(body, path)) for path in style.message)
        explanation = next((text for text in found if text), "")
        if style.details and (more := templates.describe(templates.pick(body, style.details))):
            explanation = f"{explanation}: {more}" if explanation else more
        if style.code and (code := templates.describe(templates.pick(body, style.code))):
            explanation = f"{explanation} ({code})" if explanation else code
        retry: bool | None = None
        if response.status in style.retryable:
            retry = True
        limited = self._quota_left(response.headers) == 0 and response.status in (403, 429)
        if limited:
            retry = True
            explanation = explanation or "rate limit exceeded"
        if style.retry_header and (said := response.headers.get(style.retry_header.lower())):
            retry = said.strip().lower() == "true"
        if response.status == 401 and isinstance(self.definition.auth, fmt.OAuth2Auth):
            explanation = (
                f"{explanation or 'unauthorized'} (the OAuth2 access token was refused: it may "
                "have expired or been revoked; check the Integration's OAuth2 status)"
            )
        wait = self._reset_wait(response.headers) if limited or response.status == 429 else None
        return http_core.status_error(
            response,
            http_core.where(self.ctx),
            explanation=explanation or None,
            prefix=f"{self.title}: ",
            retry=retry,
            retry_after_seconds=wait,
        )

    # Rate limits

    def _quota_left(self, headers: dict[str, str]) -> float | None:
        limit = self.definition.rate_limit
        raw = headers.get(limit.remaining.lower()) if limit and limit.remaining else None
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def _reset_wait(self, headers: dict[str, str]) -> float | None:
        """Seconds until the quota comes back, from the rate-limit reset header."""
        limit = self.definition.rate_limit
        raw = headers.get(limit.reset.lower()) if limit and limit.reset else None
        if limit is None or raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            return None
        seconds = {
            "epoch": value - time.time(),
            "epoch-ms": value / 1000 - time.time(),
            "seconds": value,
            "milliseconds": value / 1000,
        }[limit.reset_kind]
        return min(max(seconds, 0.0), http_core.RETRY_AFTER_CAP)

    async def _respect_quota(self, response: http_core.Response, pages: int) -> None:
        """Before the next page: wait for a used-up quota, or fail as retryable if it is long."""
        left = self._quota_left(response.headers)
        if left is None or left > 0 or self.definition.rate_limit is None:
            return
        wait = self._reset_wait(response.headers)
        if wait is None:
            return
        if wait <= meta.parse_duration(self.definition.rate_limit.max_wait):
            self.ctx.log.info(
                "%s rate limit used up; waiting %.1fs for page %d", self.title, wait, pages + 1
            )
            await asyncio.sleep(wait)
            return
        raise errors.RetryableError(
            f"{self.title}: the rate limit is used up after {pages} pages and resets in "
            f"{wait:.0f}s",
            http_core.where(self.ctx),
            retry_after=wait,
        )

    # Pagination

    async def _paginate(
        self, paging: fmt.AnyPaging, request: _Request, max_pages: int
    ) -> PageOutput:
        if (
            paging.size_param
            and paging.size
            and not request.has_param(paging.size_param, paging.in_)
        ):
            request = request.with_param(paging.size_param, paging.size, paging.in_)
        position = 0
        if isinstance(paging, fmt.PagePaging | fmt.OffsetPaging):
            start = paging.first if isinstance(paging, fmt.PagePaging) else 0
            if not request.has_param(paging.param, paging.in_):
                request = request.with_param(paging.param, start, paging.in_)
            position = start
        items: list[Any] = []
        pages = 0
        while True:
            response = await self._send(request, pages)
            pages += 1
            found = templates.pick(response.body, paging.items)
            if found is None:
                found = []
            if not isinstance(found, list):
                raise errors.PermanentError(
                    f"{self.title}: page {pages} has no list at {paging.items or 'the top'!r}",
                    http_core.where(self.ctx),
                )
            items.extend(found)
            position += len(found) if isinstance(paging, fmt.OffsetPaging) else 1
            following = self._next(paging, request, response, found, position)
            if following is None:
                return PageOutput(items=items, pages=pages, truncated=False)
            if pages >= max_pages:
                self.ctx.log.warning(
                    "%s: stopped after maxPages=%d pages (%d items); the service has more",
                    self.title,
                    max_pages,
                    len(items),
                )
                return PageOutput(items=items, pages=pages, truncated=True)
            await self._respect_quota(response, pages)
            request = following

    def _next(
        self,
        paging: fmt.AnyPaging,
        request: _Request,
        response: http_core.Response,
        found: list[Any],
        position: int,
    ) -> _Request | None:
        body = response.body
        if isinstance(paging, fmt.PagePaging):
            if not found or (paging.size and len(found) < paging.size):
                return None
            return request.with_param(paging.param, position, paging.in_)
        if isinstance(paging, fmt.OffsetPaging):
            total = templates.pick(body, paging.total) if paging.total else None
            short = paging.size is not None and len(found) < paging.size
            ended = paging.has_more is not None and not templates.pick(body, paging.has_more)
            if not found or short or ended or (isinstance(total, int) and position >= total):
                return None
            return request.with_param(paging.param, position, paging.in_)
        if isinstance(paging, fmt.CursorPaging):
            if paging.has_more is not None and not templates.pick(body, paging.has_more):
                return None
            if paging.from_ is not None:
                cursor = templates.pick(body, paging.from_)
            else:
                cursor = templates.pick(found[-1], paging.from_last_item or "") if found else None
            if cursor in (None, ""):
                return None
            if paging.continue_path is not None:
                url = self._join(paging.continue_path)
                return _Request("POST", url, request.headers, {paging.param: cursor})
            return request.with_param(paging.param, cursor, paging.in_)
        if isinstance(paging, fmt.LinkPaging):
            target = templates.links(response.headers.get("link", "")).get("next")
        else:
            target = templates.pick(body, paging.from_)
        if not target or not isinstance(target, str):
            return None
        url = request.url.join(target)
        if not self.credentials.allows(url):
            raise errors.PermanentError(
                f"{self.title}: the next page is at {self.credentials.redactor.text(str(url))}, "
                f"outside {self.base.scheme}://{self.base.netloc.decode()}; not following it",
                http_core.where(self.ctx),
            )
        return _Request("GET", url, request.headers)

    def _timeout(self) -> float:
        """``settings.timeout`` (a duration) for each request, 30s if not set."""
        value = self.ctx.settings.get("timeout")
        if value is None:
            return http_core.DEFAULT_TIMEOUT
        try:
            seconds = meta.parse_duration(value)
        except (TypeError, ValueError):
            seconds = 0
        if seconds <= 0:
            raise errors.InvalidSettingsError(
                f"settings.timeout {value!r} is not a duration like 30s or 2m",
                auth.integration_where(self.ctx, "settings.timeout"),
            )
        return seconds
