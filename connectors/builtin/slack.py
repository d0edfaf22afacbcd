"""The ``slack`` connector: Slack's Web API (messages, file uploads) and incoming webhooks.

Actions and the Slack methods they call::

    postMessage    chat.postMessage: channel, text, blocks, threadTs, ... → channel, ts, message
    updateMessage  chat.update: channel, ts, text, blocks → channel, ts, text
    uploadFile     files.getUploadURLExternal → POST the bytes to the upload URL →
                   files.completeUploadExternal (shared to channel, or private) → fileId, files
    webhookSend    POST to the incoming webhook URL (secret ``webhookUrl``): text, blocks
    (probe)        auth.test with the token; a webhook-only Integration is not probed

Every request goes through ``http_core.Exchange``, as the ``http`` connector's do: one pooled
``httpx.AsyncClient`` per run, time and size limits, the status check, and redaction of the
token (and the webhook URL, which is a credential too) from anything returned, raised or logged.
The bearer token is bound to the origin of the API's base URL, so it does not travel to the
upload URL, which Slack signs on its own.

Slack answers API errors with HTTP 200 and ``{"ok": false, "error": "channel_not_found"}``.
Those are ``PermanentError`` naming the method and the error code (and what Slack adds:
``needed`` scopes, ``response_metadata.messages``), except ``ratelimited`` and Slack's own
transient failures (``internal_error``, ``fatal_error``, ``service_unavailable``,
``request_timeout``), which are ``RetryableError``. HTTP 429 is retryable with its
``Retry-After``; other statuses are classified as for any HTTP call. Slack has no idempotency
key for messages: a retried ``postMessage`` whose first reply was lost posts twice.

The Integration (type ``slack``)::

    settings: baseUrl (https://slack.com/api; tests point it at a local server), timeout (30s)
    secrets:  token (a bot or user token, for the Web API), webhookUrl (for webhookSend)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import pydantic
from pydantic import alias_generators

from autoflow.connectors import sdk
from autoflow.connectors.sdk import http_auth, http_core, redaction
from autoflow.crds import errors, meta, problems

connector = sdk.Connector(
    "slack", "Post, update and upload to Slack through its Web API, or send to an incoming webhook."
)

DEFAULT_BASE_URL = "https://slack.com/api"
# Errors Slack documents as its own transient failures: the same call may succeed later.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The step field an error code is about, so the message points there.
_ERROR_FIELDS = {
    "channel_not_found": "channel",
    "not_in_channel": "channel",
    "is_archived": "channel",
    "invalid_blocks": "blocks",
    "invalid_blocks_format": "blocks",
    "no_text": "text",
    "msg_too_long": "text",
    "message_not_found": "ts",
    "cant_update_message": "ts",
    "edit_window_closed": "ts",
}
Block = dict[str, Any]


# -- parameters and outputs -------------------------------------------------------------------


class _Message(sdk.Params):
    text: str | None = pydantic.Field(
        default=None, description="The message text (mrkdwn); the fallback text with blocks."
    )
    blocks: list[Block] | None = pydantic.Field(default=None, description="Block Kit blocks.")
    attachments: list[dict[str, Any]] | None = pydantic.Field(
        default=None, description="Legacy secondary attachments."
    )

    @pydantic.model_validator(mode="after")
    def _has_content(self) -> _Message:
        if self.text is None and not self.blocks and not self.attachments:
            raise ValueError("give text, blocks or attachments")
        return self


class PostMessageParams(_Message):
    channel: str = pydantic.Field(min_length=1, description="Channel ID (C...), name or user ID.")
    thread_ts: str | None = pydantic.Field(
        default=None, description="Reply in the thread of this message (its ts)."
    )
    reply_broadcast: bool | None = pydantic.Field(
        default=None, description="With threadTs: also show the reply in the channel."
    )
    mrkdwn: bool | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None


class PostMessageOutput(sdk.Output):
    channel: str = pydantic.Field(description="The channel ID the message went to.")
    ts: str = pydantic.Field(description="The message's timestamp: its ID within the channel.")
    message: dict[str, Any] = pydantic.Field(default_factory=dict)


class UpdateMessageParams(_Message):
    channel: str = pydantic.Field(min_length=1, description="The channel ID of the message.")
    ts: str = pydantic.Field(min_length=1, description="The ts of the message to update.")


class UpdateMessageOutput(sdk.Output):
    channel: str
    ts: str
    text: str | None = None


class UploadFileParams(sdk.Params):
    filename: str = pydantic.Field(min_length=1, max_length=255)
    content: str = pydantic.Field(description="The file's content, as text or base64.")
    encoding: Literal["text", "base64"] = pydantic.Field(
        default="text", description="text: content is uploaded as UTF-8; base64: it is decoded."
    )
    channel: str | None = pydantic.Field(
        default=None, description="Channel ID to share the file in; private when not given."
    )
    title: str | None = None
    initial_comment: str | None = pydantic.Field(
        default=None, description="The message text introducing the file."
    )
    thread_ts: str | None = pydantic.Field(
        default=None, description="Share the file as a reply in this message's thread."
    )
    alt_text: str | None = pydantic.Field(
        default=None, max_length=1000, description="Description of an image for screen readers."
    )
    snippet_type: str | None = pydantic.Field(
        default=None, description="Syntax type of a text snippet, e.g. python."
    )


class UploadFileOutput(sdk.Output):
    file_id: str
    files: list[dict[str, Any]] = pydantic.Field(
        description="What files.completeUploadExternal returned: id and title of each file."
    )


class WebhookSendParams(_Message):
    thread_ts: str | None = None
    mrkdwn: bool | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None


class WebhookSendOutput(sdk.Output):
    status: int
    body: str = pydantic.Field(description="Slack's answer: ok.")


# -- actions ----------------------------------------------------------------------------------


@connector.action("postMessage")
async def post_message(params: PostMessageParams, ctx: sdk.ActionContext) -> PostMessageOutput:
    """Post a message to a channel, a DM or a thread (chat.postMessage)."""
    body = await WebApi(ctx).call("chat.postMessage", json_body=_arguments(params))
    return PostMessageOutput(
        channel=str(body.get("channel", "")),
        ts=str(body.get("ts", "")),
        message=body.get("message") or {},
    )


@connector.action("updateMessage")
async def update_message(
    params: UpdateMessageParams, ctx: sdk.ActionContext
) -> UpdateMessageOutput:
    """Replace the text or blocks of a message the token posted (chat.update)."""
    body = await WebApi(ctx).call("chat.update", json_body=_arguments(params))
    return UpdateMessageOutput(
        channel=str(body.get("channel", "")), ts=str(body.get("ts", "")), text=body.get("text")
    )


@connector.action("uploadFile")
async def upload_file(params: UploadFileParams, ctx: sdk.ActionContext) -> UploadFileOutput:
    """Upload a file and share it in a channel or thread, or keep it private."""
    data = _file_content(params, ctx)
    api = WebApi(ctx)
    wanted = {
        "filename": params.filename,
        "length": str(len(data)),
        "alt_txt": params.alt_text,
        "snippet_type": params.snippet_type,
    }
    target = await api.call("files.getUploadURLExternal", form=wanted)
    upload_url, file_id = target.get("upload_url"), target.get("file_id")
    if not isinstance(upload_url, str) or not isinstance(file_id, str):
        raise errors.PermanentError(
            "files.getUploadURLExternal answered ok without upload_url and file_id",
            http_core.where(ctx),
        )
    await api.upload(upload_url, data)
    file: dict[str, str] = {"id": file_id}
    if params.title is not None:
        file["title"] = params.title
    done = await api.call(
        "files.completeUploadExternal",
        form={
            "files": json.dumps([file]),
            "channel_id": params.channel,
            "initial_comment": params.initial_comment,
            "thread_ts": params.thread_ts,
        },
    )
    files = done.get("files")
    return UploadFileOutput(file_id=file_id, files=files if isinstance(files, list) else [file])


@connector.action("webhookSend")
async def webhook_send(params: WebhookSendParams, ctx: sdk.ActionContext) -> WebhookSendOutput:
    """Send a message through an incoming webhook (the URL is the secret webhookUrl)."""
    raw = ctx.secrets.get("webhookUrl")
    where = http_core.where(ctx)
    try:
        url = httpx.URL(raw.strip())
    except httpx.InvalidURL:
        url = httpx.URL("")
    if url.scheme not in ("http", "https") or not url.host:
        # Not quoted: the URL is a credential.
        raise errors.PermanentError(
            "secret 'webhookUrl' is not an https:// URL (Slack's incoming webhook URL)", where
        )
    credentials = http_auth.Credentials(redactor=redaction.Redactor([raw, raw.strip()]))
    client = await ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)
    request = client.build_request(
        "POST", url, content=_json(_arguments(params)), headers=_JSON_HEADERS
    )
    response = await _exchange(ctx, credentials, client, "text", "incoming webhook: ").run(request)
    return WebhookSendOutput(status=response.status, body=str(response.body))


# Slack's auth.test errors that mean the token itself is not accepted.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


@connector.probe
async def probe(integration: sdk.IntegrationInfo) -> str | sdk.NotProbed:
    """Calls auth.test with the token: the workspace and user it belongs to. An Integration
    with only a webhookUrl is not probed: an incoming webhook can only be tried by posting."""
    if sdk.optional_secret(integration, "token") is None:
        if sdk.optional_secret(integration, "webhookUrl") is not None:
            return sdk.NotProbed(
                "it has an incoming webhook URL and no token: a webhook can only be tested "
                "by posting a message to the channel, so nothing was sent"
            )
        integration.secrets.get("token")  # the provider's own error: which key, where to set it
    async with sdk.probe_context(integration) as ctx:
        try:
            body = await WebApi(ctx).call("auth.test", form={})
        except errors.ConnectorError as exc:
            if exc.details.get("error") in REFUSED_TOKEN_ERRORS:
                raise errors.CredentialsRejectedError(
                    exc.message, exc.where, details=exc.details
                ) from None
            raise http_core.probe_error(exc) from None
    team = body.get("team") or body.get("team_id") or "?"
    user = body.get("user") or body.get("user_id") or "?"
    where = f" ({body['url']})" if body.get("url") else ""
    return f"Slack workspace {team}{where}, as {user}"


# -- the Web API ------------------------------------------------------------------------------


class Settings(pydantic.BaseModel):
    """The ``settings`` of a ``slack`` Integration."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="forbid"
    )

    base_url: str = pydantic.Field(
        default=DEFAULT_BASE_URL, description="The Web API's base URL, methods appended."
    )
    timeout: meta.Duration = "30s"


connector.integration_form(
    Settings,
    token="a bot (xoxb-) or user (xoxp-) token, for the Web API actions",
    webhookUrl="an incoming webhook URL, for the webhook action",
)


_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class WebApi:
    """Calls Web API methods for one step, with the Integration's token."""

    def __init__(self, ctx: sdk.ActionContext) -> None:
        self.ctx = ctx
        self.settings = _settings(ctx)
        self.base = http_core.base_url(ctx, self.settings.base_url)
        token = ctx.secrets.get("token")
        self.credentials = http_auth.Credentials(
            http_auth.origin(self.base),
            {"Authorization": f"Bearer {token}"},
            {},
            redaction.Redactor([token]),
        )

    async def call(
        self,
        method: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """POST one method; its body when ``ok`` is true, else the error Slack named."""
        client = await self.ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)
        url = self.base.copy_with(raw_path=self.base.raw_path.rstrip(b"/") + f"/{method}".encode())
        if json_body is not None:
            request = client.build_request(
                "POST", url, content=_json(json_body), headers=_JSON_HEADERS
            )
        else:
            fields = {k: v for k, v in (form or {}).items() if v is not None}
            request = client.build_request("POST", url, data=fields)
        response = await self._exchange(client, "json", f"Slack {method}: ").run(request)
        body = response.body
        if not isinstance(body, dict) or "ok" not in body:
            raise errors.PermanentError(
                f"Slack {method}: the answer is not a Web API response (no 'ok'): "
                f"{http_core.shorten(json.dumps(body), 200)}",
                http_core.where(self.ctx),
            )
        if body["ok"] is not True:
            raise _api_error(method, body, response, self.ctx)
        return body

    async def upload(self, upload_url: str, data: bytes) -> None:
        """Send the file's bytes to the URL files.getUploadURLExternal gave (no token)."""
        client = await self.ctx.pooled(http_core.CLIENT_KEY, http_core.new_client)
        try:
            url = httpx.URL(upload_url)
        except httpx.InvalidURL:
            url = httpx.URL("")
        if url.scheme not in ("http", "https") or not url.host:
            raise errors.PermanentError(
                f"files.getUploadURLExternal gave an upload_url that is not an http(s) URL: "
                f"{self.credentials.redactor.text(upload_url)!r}",
                http_core.where(self.ctx),
            )
        request = client.build_request(
            "POST", url, content=data, headers={"Content-Type": "application/octet-stream"}
        )
        await self._exchange(client, "text", "Slack file upload: ").run(request)

    def _exchange(
        self, client: httpx.AsyncClient, response_type: Literal["json", "text"], prefix: str
    ) -> http_core.Exchange:
        return _exchange(self.ctx, self.credentials, client, response_type, prefix)


def _exchange(
    ctx: sdk.ActionContext,
    credentials: http_auth.Credentials,
    client: httpx.AsyncClient,
    response_type: Literal["json", "text"],
    prefix: str,
) -> http_core.Exchange:
    settings = _settings(ctx)
    options = http_core.Options(
        timeout=meta.parse_duration(settings.timeout),
        response_type=response_type,
        limit_field=None,
        type_field=None,
    )
    return _Exchange(ctx, credentials, client, options, prefix)


class _Exchange(http_core.Exchange):
    """``http_core.Exchange`` whose errors start by naming the Slack call that failed."""

    def __init__(
        self,
        ctx: sdk.ActionContext,
        credentials: http_auth.Credentials,
        client: httpx.AsyncClient,
        options: http_core.Options,
        prefix: str,
    ) -> None:
        super().__init__(ctx, credentials, client, options)
        self.prefix = prefix

    async def run(self, request: httpx.Request) -> http_core.Response:
        try:
            return await super().run(request)
        except errors.ConnectorError as exc:
            raise type(exc)(
                self.prefix + exc.message,
                exc.where,
                retry_after=exc.retry_after,
                details=exc.details,
            ) from None


def _api_error(
    method: str, body: dict[str, Any], response: http_core.Response, ctx: sdk.ActionContext
) -> errors.ConnectorError:
    code = str(body.get("error") or "unknown_error")
    message = f"Slack {method} answered ok: false, error {code!r}"
    extra: list[str] = []
    if body.get("needed"):
        extra.append(f"needed scope {body['needed']!r}, the token has {body.get('provided')!r}")
    metadata = body.get("response_metadata")
    notes = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(notes, list) and notes:
        extra.append("; ".join(str(n) for n in notes[:5]))
    if extra:
        message += f" ({'; '.join(extra)})"
    field = _ERROR_FIELDS.get(code)
    where = http_core.where(ctx, field)
    details: dict[str, object] = {"error": code, "status": response.status, "body": body}
    if code in RETRYABLE_ERRORS:
        wait = http_core.retry_after(response.headers.get("retry-after"))
        return errors.RetryableError(message, where, retry_after=wait, details=details)
    return errors.PermanentError(message, where, details=details)


def _arguments(params: sdk.Params) -> dict[str, Any]:
    """The step's fields as Slack's snake_case arguments, unset ones left out."""
    return params.model_dump(by_alias=False, exclude_none=True)


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _file_content(params: UploadFileParams, ctx: sdk.ActionContext) -> bytes:
    if params.encoding == "text":
        data = params.content.encode()
    else:
        try:
            data = base64.b64decode(params.content, validate=True)
        except (binascii.Error, ValueError):
            raise errors.PermanentError(
                "content is not base64", http_core.where(ctx, "content")
            ) from None
    if not data:
        # Slack refuses a zero length (missing_argument); say so before calling it.
        raise errors.PermanentError("the file is empty", http_core.where(ctx, "content"))
    return data


def _settings(ctx: sdk.ActionContext) -> Settings:
    try:
        return Settings.model_validate(dict(ctx.settings))
    except pydantic.ValidationError as exc:
        name = ctx.integration.name if ctx.integration else ""
        field, message = problems.first(exc)
        raise errors.InvalidSettingsError(
            f"integration {name!r} has unusable settings: {field}: {message}",
            errors.Where(resource=f"Integration/{name}", field=f"settings.{field}"),
        ) from None
