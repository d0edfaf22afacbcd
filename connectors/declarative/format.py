"""The declarative connector format: one YAML file per SaaS service, validated on load.

``parse(text, source)`` turns a definition file into a ``Definition`` or raises an
``errors.ValidationError`` whose problems name the file, line and field::

    YAML text ─ yaml.compose (keeps line numbers) ─► data
    ─ Definition.model_validate ─► field types, enums, one pagination style, one auth scheme
    ─ check() ─► cross-references: every {placeholder} is a declared parameter, setting or
                 secret; path placeholders are always set; paginate has a pagination
    ─► Definition

The format, field by field, is in ``docs/writing-connectors.md``; the models below are its
reference. Names in the file are camelCase, as in every Autoflow manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import alias_generators

from autoflow.connectors.declarative import templates
from autoflow.crds import errors, meta

Family = Literal[
    "crm",
    "chat",
    "email",
    "file-storage",
    "database",
    "payments",
    "marketing",
    "project-management",
]
ParamType = Literal["string", "integer", "number", "boolean", "object", "array", "any"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Placement = Literal["query", "body"]

NAME = r"^[a-z][a-z0-9-]*$"
ACTION_NAME = r"^[a-z][a-z0-9_]*$"
PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Settings every declarative connector understands without declaring them.
RESERVED_SETTINGS = frozenset({"baseUrl", "timeout"})
MAX_PAGES_LIMIT = 1000


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class Param(Model):
    """One action parameter; becomes a field of the action's generated Params model."""

    type: ParamType = "string"
    required: bool = False
    description: str = ""
    enum: list[str | int | float] | None = None
    default: Any = None
    format: str | None = pydantic.Field(
        default=None, description="A JSON Schema format hint: email, date, date-time, uri."
    )
    items: Param | None = pydantic.Field(default=None, description="For arrays: each item.")
    properties: dict[str, Param] | None = pydantic.Field(
        default=None, description="For objects with known fields; other fields are refused."
    )

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.required and "default" in self.model_fields_set:
            raise ValueError("a required parameter has no default")
        if self.items is not None and self.type != "array":
            raise ValueError("items is for type: array")
        if self.properties is not None and self.type != "object":
            raise ValueError("properties is for type: object")
        return self


class Setting(Model):
    """An Integration setting the definition uses in ``baseUrl`` or ``headers``."""

    description: str = ""
    default: str | None = None


# Auth schemes: each field is a template over the Integration's secret keys.


class NoAuth(Model):
    scheme: Literal["none"]


class BearerAuth(Model):
    scheme: Literal["bearer"]
    token: str = "{token}"


class OAuth2Auth(Model):
    """A bearer token the Integration's OAuth2 flow keeps fresh in its Secret."""

    scheme: Literal["oauth2"]
    token: str = "{accessToken}"


class BasicAuth(Model):
    scheme: Literal["basic"]
    username: str = "{username}"
    password: str = "{password}"


class HeaderAuth(Model):
    scheme: Literal["header"]
    name: str = pydantic.Field(min_length=1, description="The header, e.g. X-Api-Key.")
    value: str = "{apiKey}"


class QueryAuth(Model):
    scheme: Literal["query"]
    params: dict[str, str] = pydantic.Field(min_length=1, description="Query name → template.")


class UrlAuth(Model):
    """The secret is the base URL itself, as with chat incoming webhooks."""

    scheme: Literal["url"]
    url: str = "{webhookUrl}"


Auth = Annotated[
    NoAuth | BearerAuth | OAuth2Auth | BasicAuth | HeaderAuth | QueryAuth | UrlAuth,
    pydantic.Field(discriminator="scheme"),
]


def auth_templates(auth: Any) -> list[str]:
    """The secret templates of an auth scheme, in a fixed order."""
    if isinstance(auth, QueryAuth):
        return list(auth.params.values())
    return [
        value
        for field, value in auth
        if field != "scheme" and field != "name" and isinstance(value, str)
    ]


class RateLimit(Model):
    """Response headers that tell how much quota is left and when it comes back."""

    remaining: str | None = None
    reset: str | None = None
    reset_kind: Literal["epoch", "epoch-ms", "seconds", "milliseconds"] = pydantic.Field(
        default="epoch",
        description="epoch: Unix seconds; seconds/milliseconds: a delay from now.",
    )
    max_wait: meta.Duration = pydantic.Field(
        default="30s",
        description="Between pages, wait up to this long for the quota to come back; "
        "a longer wait fails the step as retryable.",
    )


class ErrorStyle(Model):
    """Where a service's error responses say what went wrong."""

    message: list[str] = pydantic.Field(
        default_factory=list, description="JSON paths to try in order; the body text if none."
    )
    details: str | None = pydantic.Field(
        default=None, description="JSON path to details added after the message."
    )
    code: str | None = pydantic.Field(default=None, description="JSON path to an error code.")
    retryable: list[Annotated[int, pydantic.Field(ge=400, le=499)]] = pydantic.Field(
        default_factory=list, description="4xx statuses to retry, besides 408 and 429."
    )
    retry_header: str | None = pydantic.Field(
        default=None, description="A header saying true/false whether to retry (Stripe)."
    )

    @pydantic.field_validator("message", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class PagingBase(Model):
    items: str = pydantic.Field(default="", description="JSON path to each page's items.")
    max_pages: int = pydantic.Field(default=10, ge=1, le=MAX_PAGES_LIMIT)
    in_: Placement = pydantic.Field(default="query", alias="in")
    size_param: str | None = None
    size: int | None = pydantic.Field(default=None, ge=1)


class PagePaging(PagingBase):
    """page=1, 2, ... until a page has fewer than ``size`` items."""

    style: Literal["page"]
    param: str = "page"
    first: int = 1
    size_param: str | None = "per_page"
    size: int | None = pydantic.Field(default=100, ge=1)


class OffsetPaging(PagingBase):
    """offset=0, size, 2*size, ... until a short page, ``total`` reached or ``hasMore`` false."""

    style: Literal["offset"]
    param: str = "offset"
    size_param: str | None = "limit"
    size: int | None = pydantic.Field(default=100, ge=1)
    total: str | None = None
    has_more: str | None = None


class CursorPaging(PagingBase):
    """The next cursor from the response (or from the last item), until it is empty."""

    style: Literal["cursor"]
    param: str = "cursor"
    from_: str | None = pydantic.Field(default=None, alias="from")
    from_last_item: str | None = None
    has_more: str | None = None
    continue_path: str | None = pydantic.Field(
        default=None, description="Later pages POST {param: cursor} here (Dropbox)."
    )

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> CursorPaging:
        if (self.from_ is None) == (self.from_last_item is None):
            raise ValueError("give one of from (a response path) or fromLastItem")
        return self


class LinkPaging(PagingBase):
    """The ``Link: <url>; rel="next"`` response header, until there is none."""

    style: Literal["link"]


class NextUrlPaging(PagingBase):
    """A next-page URL (absolute, or from the host's root) at a response path."""

    style: Literal["nextUrl"]
    from_: str = pydantic.Field(alias="from")


AnyPaging = PagePaging | OffsetPaging | CursorPaging | LinkPaging | NextUrlPaging
Pagination = Annotated[AnyPaging, pydantic.Field(discriminator="style")]


class Action(Model):
    description: str = pydantic.Field(min_length=1)
    docs: str | None = pydantic.Field(default=None, description="The API reference page.")
    params: dict[str, Param] = pydantic.Field(default_factory=dict)
    method: Method = "GET"
    path: str = pydantic.Field(
        pattern=r"^(/[^?#]*)?$", description="Appended to the base URL; no query (see query)."
    )
    query: dict[str, Any] = pydantic.Field(default_factory=dict)
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    body: Any = None
    body_encoding: Literal["json", "form"] | None = None
    output: str | None = pydantic.Field(default=None, description="JSON path to output.")
    paginate: bool = False
    pagination: Pagination | None = None

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Probe(Model):
    """A cheap call that changes nothing (who am I, a ping), for the Integration's health."""

    method: Method = "GET"
    path: str = pydantic.Field(
        pattern=r"^(/[^?#]*)?$", description="Appended to the base URL, as an action's path."
    )
    query: dict[str, Any] = pydantic.Field(default_factory=dict)
    body: Any = None
    identity: str | None = pydantic.Field(
        default=None, description="JSON path to who the credentials belong to, for the message."
    )
    docs: str | None = pydantic.Field(default=None, description="The API reference page.")

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def action(self) -> Action:
        """The call as an action without parameters, so the engine runs it like any other."""
        return Action(
            description="health probe",
            docs=self.docs,
            method=self.method,
            path=self.path,
            query=self.query,
            body=self.body,
        )


class Definition(Model):
    name: str = pydantic.Field(pattern=NAME, max_length=63)
    title: str = pydantic.Field(min_length=1)
    description: str = ""
    family: Family
    docs: str = pydantic.Field(pattern=r"^https?://")
    base_url: str | None = pydantic.Field(
        default=None, pattern=r"^https?://", description="Not used with auth scheme url."
    )
    settings: dict[str, Setting] = pydantic.Field(default_factory=dict)
    auth: Auth
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    body_encoding: Literal["json", "form"] = "json"
    idempotency_header: str | None = None
    rate_limit: RateLimit | None = None
    errors: ErrorStyle = ErrorStyle()
    pagination: Pagination | None = None
    actions: dict[Annotated[str, pydantic.Field(pattern=ACTION_NAME)], Action] = pydantic.Field(
        min_length=1
    )
    probe: Probe | None = None

    def secret_keys(self) -> list[str]:
        """The Integration secret keys this connector reads."""
        keys: list[str] = []
        for template in auth_templates(self.auth):
            keys.extend(k for k in sorted(templates.placeholders(template)) if k not in keys)
        return keys

    def paging(self, action: Action) -> AnyPaging | None:
        """The pagination an action uses, if it paginates."""
        if not action.paginate:
            return None
        return action.pagination or self.pagination


def parse(text: str, source: str, expected_name: str | None = None) -> Definition:
    """A checked ``Definition`` from YAML text, or a ValidationError naming file, line, field."""
    where = errors.Where(file=source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise errors.ManifestSyntaxError(
            f"not valid YAML: {exc}", where.replace(line=line)
        ) from None
    if not isinstance(data, dict):
        raise errors.ManifestSyntaxError("a connector definition is a YAML mapping", where)
    try:
        definition = Definition.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _without_tags(err["loc"], data)
            problems.append(
                errors.Problem(
                    _message(err), where.replace(field=_dotted(loc), line=_line(node, loc))
                )
            )
        raise errors.ValidationError(problems) from None
    found = [
        errors.Problem(message, where.replace(field=field, line=_line(node, field.split("."))))
        for field, message in check(definition, expected_name)
    ]
    if failure := errors.ValidationError.collect(found):
        raise failure
    return definition


def check(definition: Definition, expected_name: str | None = None) -> Iterator[tuple[str, str]]:
    """What the schema cannot say: (field, message) for every broken cross-reference."""
    if expected_name is not None and definition.name != expected_name:
        yield "name", f"is {definition.name!r} but the file is named {expected_name}.yaml"
    settings = set(definition.settings) | RESERVED_SETTINGS
    if definition.base_url is None and not isinstance(definition.auth, UrlAuth):
        yield "baseUrl", "is required (only auth scheme url, where the secret is the URL, has none)"
    for field, template in [("baseUrl", definition.base_url or "")] + [
        (f"headers.{k}", v) for k, v in definition.headers.items()
    ]:
        for name in sorted(templates.placeholders(template) - settings):
            yield field, f"{{{name}}} is not a declared setting (settings: {_names(settings)})"
    if not definition.secret_keys() and not isinstance(definition.auth, NoAuth):
        yield "auth", "names no secret key: write a {key} placeholder"
    for name, action in definition.actions.items():
        yield from _check_action(definition, f"actions.{name}", action)
    if definition.probe is not None:
        probe = definition.probe
        parts: tuple[tuple[str, Any], ...] = (
            ("path", probe.path),
            ("query", probe.query),
            ("body", probe.body),
        )
        for part, template in parts:
            if names := templates.placeholders(template):
                listed = ", ".join(f"{{{n}}}" for n in sorted(names))
                yield f"probe.{part}", f"{listed}: a probe takes no parameters"


def _check_action(definition: Definition, at: str, action: Action) -> Iterator[tuple[str, str]]:
    declared = set(action.params)
    for name, param in action.params.items():
        if not PARAM_NAME.match(name):
            yield f"{at}.params.{name}", "a parameter name is letters, digits and _"
        if param.enum is not None and param.default is not None and param.default not in param.enum:
            yield f"{at}.params.{name}.default", f"{param.default!r} is not one of the enum"
    for part, template in (
        ("path", action.path),
        ("query", action.query),
        ("headers", action.headers),
        ("body", action.body),
    ):
        for name in sorted(templates.placeholders(template) - declared):
            yield f"{at}.{part}", f"{{{name}}} is not a parameter (params: {_names(declared)})"
    for name in sorted(templates.placeholders(action.path) & declared):
        param = action.params[name]
        if not param.required and param.default is None:
            yield f"{at}.params.{name}", "is in the path, so it must be required or have a default"
    paging = definition.paging(action)
    if action.paginate and paging is None:
        yield (
            f"{at}.paginate",
            "the action paginates but neither it nor the connector has pagination",
        )
    if action.pagination is not None and not action.paginate:
        yield f"{at}.pagination", "is set but paginate is false"
    encoding = action.body_encoding or definition.body_encoding
    if encoding == "form" and action.body is not None and not isinstance(action.body, dict):
        yield f"{at}.body", "a form body is a mapping of field names to values"
    if paging is not None:
        if "maxPages" in declared:
            yield f"{at}.params.maxPages", "maxPages is added to paginated actions by the engine"
        uses_body = paging.in_ == "body" or (
            isinstance(paging, CursorPaging) and paging.continue_path is not None
        )
        if uses_body and action.body is not None and not isinstance(action.body, dict):
            yield f"{at}.body", "pagination puts its parameters in the body, so it is a mapping"


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _message(err: Any) -> str:
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "is not a field of the format (a typo?)"
    if err["type"] == "union_tag_invalid":
        ctx = err["ctx"]
        name = str(ctx["discriminator"]).strip("'")
        return f"{name}: {ctx['tag']!r} is not one of {ctx['expected_tags']}"
    return message


def _without_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The location without pydantic's union tags: ``auth.header.name`` → ``auth.name``."""
    kept: list[Any] = []
    for part in loc:
        if (
            isinstance(data, dict)
            and part not in data
            and part
            in (
                data.get("scheme"),
                data.get("style"),
            )
        ):
            continue
        kept.append(part)
        data = data.get(part) if isinstance(data, dict) else None
    return tuple(kept)


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _line(node: Any, loc: Any) -> int | None:
    """The 1-based line of the deepest node on ``loc`` the YAML document has."""
    found = node
    for part in loc:
        child = None
        if isinstance(found, yaml.MappingNode):
            child = next((v for k, v in found.value if k.value == str(part)), None)
        elif isinstance(found, yaml.SequenceNode) and str(part).isdigit():
            index = int(part)
            child = found.value[index] if index < len(found.value) else None
        if child is None:
            break
        found = child
    return found.start_mark.line + 1 if found is not None else None
