"""The ``slack`` connector against a local HTTP server that follows Slack's documented contract.

``settings.baseUrl`` points the Web API at ``httpserver``; each test answers as Slack's
reference page for that method says (named in the test's docstring) and checks what reached
the server: method path, bearer token, content type and arguments. Slack reports API errors
with HTTP 200 and ``{"ok": false, "error": ...}``: those fail the step naming the code,
``ratelimited`` and HTTP 429 as retryable. The token, and the incoming webhook URL (a
credential too), appear in no output or error. The last section runs ``autoflow run``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpserver
import pytest

from autoflow.connectors import registry, sdk
from autoflow.crds import errors

TOKEN = "xoxb-17-slack-token-3f9a"
Call = Callable[..., Awaitable[dict[str, Any]]]

# The reply documented on https://docs.slack.dev/reference/methods/chat.postMessage
POSTED = {
    "ok": True,
    "channel": "C123ABC456",
    "ts": "1503435956.000247",
    "message": {
        "text": "Here's a message for you",
        "username": "ecto1",
        "bot_id": "B123ABC456",
        "type": "message",
        "subtype": "bot_message",
        "ts": "1503435956.000247",
    },
}


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str:
        if key not in self.values:
            raise errors.PermanentError(f"integration 'chat' has no secret {key!r}")
        return self.values[key]


def integration(
    server: httpserver.Server | None, secrets: dict[str, str] | None = None, **settings: Any
) -> sdk.IntegrationInfo:
    if server is not None:
        settings.setdefault("baseUrl", server.url("/api"))
    values = {"token": TOKEN} if secrets is None else secrets
    return sdk.IntegrationInfo("chat", "slack", settings, DictSecrets(values))


@pytest.fixture
def slack() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        yield running
    assert not running.errors


@pytest.fixture
def files_host() -> Iterator[httpserver.Server]:
    """Stands in for files.slack.com: another origin than the Web API."""
    with httpserver.serve() as running:
        yield running
    assert not running.errors


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    """Runs a slack action as one step of a run; the shared HTTP client closes afterwards."""
    actions = registry.Registry(entry_points=False)
    pool = sdk.ResourcePool()

    async def run(
        action: str, with_: dict[str, Any], intg: sdk.IntegrationInfo | None
    ) -> dict[str, Any]:
        found = actions.action(f"slack.{action}")
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id="notify",
            attempt=1,
            idempotency_key="run-1:notify",
            log=logging.LoggerAdapter(logging.getLogger("test.slack"), {"run_id": "run-1"}),
            integration=intg,
            pool=pool,
        )
        params = found.params.model_validate(with_)
        output: dict[str, Any] = found.dump_output(await found.func(params, ctx))
        return output

    yield run
    await pool.aclose()


async def expect_error(call: Awaitable[Any]) -> errors.ConnectorError:
    with pytest.raises(errors.ConnectorError) as caught:
        await call
    error = caught.value
    assert TOKEN not in str(error) + json.dumps(error.details, default=str)
    return error


def api_call(server: httpserver.Server, method: str) -> httpserver.Recorded:
    seen = server.last(f"/api/{method}")
    assert seen.method == "POST"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    return seen


# -- chat.postMessage -------------------------------------------------------------------------


async def test_post_message(call: Call, slack: httpserver.Server) -> None:
    """https://docs.slack.dev/reference/methods/chat.postMessage: JSON arguments (channel,
    text, blocks, thread_ts), bearer token; the reply carries channel, ts and message."""
    slack.route("/api/chat.postMessage", httpserver.Reply.with_json(POSTED))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Order 17* shipped"}}]
    out = await call(
        "postMessage",
        {
            "channel": "C123ABC456",
            "text": "Order 17 shipped",
            "blocks": blocks,
            "threadTs": "1503435900.000100",
            "unfurlLinks": False,
        },
        integration(slack),
    )
    assert out == {
        "channel": "C123ABC456",
        "ts": "1503435956.000247",
        "message": POSTED["message"],
    }
    seen = api_call(slack, "chat.postMessage")
    assert seen.headers["content-type"] == "application/json; charset=utf-8"
    assert seen.json() == {
        "channel": "C123ABC456",
        "text": "Order 17 shipped",
        "blocks": blocks,
        "thread_ts": "1503435900.000100",
        "unfurl_links": False,
    }


async def test_post_message_takes_slacks_own_argument_names(
    call: Call, slack: httpserver.Server
) -> None:
    """chat.postMessage's thread_ts and reply_broadcast, written as Slack spells them."""
    slack.route("/api/chat.postMessage", httpserver.Reply.with_json(POSTED))
    with_ = {"channel": "C1", "text": "x", "thread_ts": "1.2", "reply_broadcast": True}
    await call("postMessage", with_, integration(slack))
    assert api_call(slack, "chat.postMessage").json() == with_


async def test_ok_false_is_permanent_and_names_the_error_code(
    call: Call, slack: httpserver.Server
) -> None:
    """chat.postMessage documents errors as HTTP 200 with ok: false, e.g. channel_not_found."""
    slack.route(
        "/api/chat.postMessage",
        httpserver.Reply.with_json({"ok": False, "error": "channel_not_found"}),
    )
    error = await expect_error(
        call("postMessage", {"channel": "C404", "text": "x"}, integration(slack))
    )
    assert isinstance(error, errors.PermanentError)
    assert "Slack chat.postMessage answered ok: false, error 'channel_not_found'" in str(error)
    assert error.where.field == "with.channel"
    assert error.details["error"] == "channel_not_found"


async def test_missing_scope_says_which(call: Call, slack: httpserver.Server) -> None:
    """Slack's missing_scope error adds needed and provided
    (https://docs.slack.dev/reference/methods/chat.postMessage, Errors)."""
    slack.route(
        "/api/chat.postMessage",
        httpserver.Reply.with_json(
            {
                "ok": False,
                "error": "missing_scope",
                "needed": "chat:write",
                "provided": "channels:read",
            }
        ),
    )
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(slack))
    )
    assert isinstance(error, errors.PermanentError)
    assert "needed scope 'chat:write', the token has 'channels:read'" in str(error)


async def test_invalid_blocks_carry_slacks_explanation(
    call: Call, slack: httpserver.Server
) -> None:
    """invalid_blocks comes with response_metadata.messages saying what is wrong."""
    slack.route(
        "/api/chat.postMessage",
        httpserver.Reply.with_json(
            {
                "ok": False,
                "error": "invalid_blocks",
                "response_metadata": {
                    "messages": ["[ERROR] missing required field: text [json-pointer:/blocks/0]"]
                },
            }
        ),
    )
    error = await expect_error(
        call("postMessage", {"channel": "C1", "blocks": [{"type": "section"}]}, integration(slack))
    )
    assert "missing required field: text" in str(error)
    assert error.where.field == "with.blocks"


async def test_http_429_is_retryable_after_retry_after(
    call: Call, slack: httpserver.Server
) -> None:
    """https://docs.slack.dev/apis/web-api/rate-limits: HTTP 429 with a Retry-After header."""
    slack.route(
        "/api/chat.postMessage",
        httpserver.Reply.with_json(
            {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "30"}
        ),
    )
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(slack))
    )
    assert isinstance(error, errors.RetryableError)
    assert error.retry_after == 30
    assert str(error).startswith("step 'notify': Slack chat.postMessage: HTTP 429")


async def test_ok_false_ratelimited_and_internal_errors_are_retryable(
    call: Call, slack: httpserver.Server
) -> None:
    slack.queue(
        "/api/chat.postMessage",
        httpserver.Reply.with_json(
            {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "5"}
        ),
        httpserver.Reply.with_json({"ok": False, "error": "internal_error"}),
    )
    intg = integration(slack)
    first = await expect_error(call("postMessage", {"channel": "C1", "text": "x"}, intg))
    assert isinstance(first, errors.RetryableError)
    assert first.retry_after == 5
    second = await expect_error(call("postMessage", {"channel": "C1", "text": "x"}, intg))
    assert isinstance(second, errors.RetryableError)
    assert "'internal_error'" in str(second)


async def test_server_errors_are_retryable(call: Call, slack: httpserver.Server) -> None:
    slack.route("/api/chat.postMessage", httpserver.Reply(503, "upstream unavailable"))
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(slack))
    )
    assert isinstance(error, errors.RetryableError)


async def test_a_body_that_echoes_the_token_is_redacted(
    call: Call, slack: httpserver.Server
) -> None:
    slack.route(
        "/api/chat.postMessage",
        httpserver.Reply.with_json({"ok": False, "error": f"invalid_auth for {TOKEN}"}),
    )
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(slack))
    )
    assert "invalid_auth for ***" in str(error)
    slack.route("/api/chat.postMessage", httpserver.Reply.with_json({**POSTED, "echo": TOKEN}))
    out = await call("postMessage", {"channel": "C1", "text": "x"}, integration(slack))
    assert TOKEN not in json.dumps(out)


# -- chat.update ------------------------------------------------------------------------------


async def test_update_message(call: Call, slack: httpserver.Server) -> None:
    """https://docs.slack.dev/reference/methods/chat.update: channel, ts and the new text or
    blocks as JSON; the reply carries channel, ts and text."""
    slack.route(
        "/api/chat.update",
        httpserver.Reply.with_json(
            {
                "ok": True,
                "channel": "C123ABC456",
                "ts": "1401383885.000061",
                "text": "Updated text you carefully authored",
                "message": {"text": "Updated text you carefully authored", "user": "U34567890"},
            }
        ),
    )
    out = await call(
        "updateMessage",
        {"channel": "C123ABC456", "ts": "1401383885.000061", "text": "Updated text"},
        integration(slack),
    )
    assert out == {
        "channel": "C123ABC456",
        "ts": "1401383885.000061",
        "text": "Updated text you carefully authored",
    }
    assert api_call(slack, "chat.update").json() == {
        "channel": "C123ABC456",
        "ts": "1401383885.000061",
        "text": "Updated text",
    }


async def test_update_of_a_message_that_is_gone(call: Call, slack: httpserver.Server) -> None:
    """chat.update documents message_not_found (and cant_update_message) as ok: false."""
    slack.route(
        "/api/chat.update", httpserver.Reply.with_json({"ok": False, "error": "message_not_found"})
    )
    error = await expect_error(
        call("updateMessage", {"channel": "C1", "ts": "1.2", "text": "x"}, integration(slack))
    )
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "with.ts"


# -- files.getUploadURLExternal, upload, files.completeUploadExternal -------------------------


def upload_flow(
    slack: httpserver.Server, files_host: httpserver.Server, file_id: str = "F123ABC456"
) -> None:
    slack.route(
        "/api/files.getUploadURLExternal",
        httpserver.Reply.with_json(
            {"ok": True, "upload_url": files_host.url("/upload/v1/ABC123"), "file_id": file_id}
        ),
    )
    files_host.route("/upload/v1/ABC123", httpserver.Reply(200, "OK - 27"))

    def complete(request: httpserver.Recorded) -> httpserver.Reply:
        files = json.loads(request.form()["files"][0])
        return httpserver.Reply.with_json({"ok": True, "files": files})

    slack.route("/api/files.completeUploadExternal", complete)


async def test_upload_file_to_a_channel_thread(
    call: Call, slack: httpserver.Server, files_host: httpserver.Server
) -> None:
    """https://docs.slack.dev/reference/methods/files.getUploadURLExternal (filename and
    length → upload_url and file_id), then the bytes POSTed to upload_url, then
    https://docs.slack.dev/reference/methods/files.completeUploadExternal (files as a JSON
    array of id and title, channel_id, initial_comment, thread_ts)."""
    upload_flow(slack, files_host)
    content = "sku,qty\nA-1,2\nB-7,1\nC-9,14\n"
    out = await call(
        "uploadFile",
        {
            "filename": "stock.csv",
            "content": content,
            "title": "Stock",
            "channel": "C123ABC456",
            "initialComment": "Today's stock",
            "threadTs": "1503435956.000247",
        },
        integration(slack),
    )
    assert out == {"fileId": "F123ABC456", "files": [{"id": "F123ABC456", "title": "Stock"}]}
    asked = api_call(slack, "files.getUploadURLExternal")
    assert asked.headers["content-type"] == "application/x-www-form-urlencoded"
    assert asked.form() == {"filename": ["stock.csv"], "length": [str(len(content))]}
    uploaded = files_host.last("/upload/v1/ABC123")
    assert (uploaded.method, uploaded.body) == ("POST", content.encode())
    assert "authorization" not in uploaded.headers  # the upload URL is signed; no token there
    completed = api_call(slack, "files.completeUploadExternal")
    assert completed.form() == {
        "files": ['[{"id": "F123ABC456", "title": "Stock"}]'],
        "channel_id": ["C123ABC456"],
        "initial_comment": ["Today's stock"],
        "thread_ts": ["1503435956.000247"],
    }


async def test_upload_binary_file_kept_private(
    call: Call, slack: httpserver.Server, files_host: httpserver.Server
) -> None:
    """files.completeUploadExternal without channel_id keeps the file private."""
    upload_flow(slack, files_host)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    await call(
        "uploadFile",
        {
            "filename": "chart.png",
            "content": base64.b64encode(png).decode(),
            "encoding": "base64",
            "altText": "A chart",
        },
        integration(slack),
    )
    asked = api_call(slack, "files.getUploadURLExternal").form()
    assert asked == {"filename": ["chart.png"], "length": [str(len(png))], "alt_txt": ["A chart"]}
    assert files_host.last("/upload/v1/ABC123").body == png
    assert api_call(slack, "files.completeUploadExternal").form() == {
        "files": ['[{"id": "F123ABC456"}]']
    }


async def test_upload_refused_by_slack_and_a_failing_upload_url(
    call: Call, slack: httpserver.Server, files_host: httpserver.Server
) -> None:
    """files.getUploadURLExternal documents file_uploads_disabled as ok: false."""
    slack.queue(
        "/api/files.getUploadURLExternal",
        httpserver.Reply.with_json({"ok": False, "error": "file_uploads_disabled"}),
    )
    with_ = {"filename": "a.txt", "content": "hello", "channel": "C1"}
    error = await expect_error(call("uploadFile", with_, integration(slack)))
    assert isinstance(error, errors.PermanentError)
    assert "files.getUploadURLExternal answered ok: false, error 'file_uploads_disabled'" in str(
        error
    )
    upload_flow(slack, files_host)
    files_host.route("/upload/v1/ABC123", httpserver.Reply(500, "try later"))
    error = await expect_error(call("uploadFile", with_, integration(slack)))
    assert isinstance(error, errors.RetryableError)
    assert "Slack file upload: HTTP 500" in str(error)
    assert slack.calls("/api/files.completeUploadExternal") == 0


async def test_an_empty_file_is_refused_before_calling_slack(
    call: Call, slack: httpserver.Server
) -> None:
    error = await expect_error(
        call("uploadFile", {"filename": "a.txt", "content": ""}, integration(slack))
    )
    assert isinstance(error, errors.PermanentError)
    assert slack.calls() == 0


# -- incoming webhooks ------------------------------------------------------------------------


async def test_webhook_send(call: Call, slack: httpserver.Server) -> None:
    """https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks: POST a JSON
    message (text, blocks) to the webhook URL; Slack answers 200 with the body "ok"."""
    path = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    slack.route(path, httpserver.Reply(200, "ok"))
    hook = integration(None, {"webhookUrl": slack.url(path)})
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Deploy *done*"}}]
    out = await call("webhookSend", {"text": "Deploy done", "blocks": blocks}, hook)
    assert out == {"status": 200, "body": "ok"}
    seen = slack.last(path)
    assert seen.headers["content-type"] == "application/json; charset=utf-8"
    assert seen.json() == {"text": "Deploy done", "blocks": blocks}
    assert "authorization" not in seen.headers


async def test_webhook_errors_do_not_show_the_url(call: Call, slack: httpserver.Server) -> None:
    """Incoming webhooks answer errors as HTTP statuses with a text code, e.g. 404
    no_service, 410 channel_is_archived (same page, Handling errors)."""
    path = "/services/T0/B0/secretpart1234567890"
    slack.queue(path, httpserver.Reply(404, "no_service"), httpserver.Reply(429, "rate_limited"))
    hook = integration(None, {"webhookUrl": slack.url(path)})
    error = await expect_error(call("webhookSend", {"text": "x"}, hook))
    assert isinstance(error, errors.PermanentError)
    assert str(error).startswith("step 'notify': incoming webhook: HTTP 404")
    assert "no_service" in str(error)
    assert "secretpart1234567890" not in str(error) + json.dumps(error.details, default=str)
    error = await expect_error(call("webhookSend", {"text": "x"}, hook))
    assert isinstance(error, errors.RetryableError)


async def test_webhook_url_that_is_not_a_url(call: Call) -> None:
    hook = integration(None, {"webhookUrl": "hooks.slack.com/services/abc-secret-9"})
    error = await expect_error(call("webhookSend", {"text": "x"}, hook))
    assert isinstance(error, errors.PermanentError)
    assert "abc-secret-9" not in str(error)


# -- settings and credentials -----------------------------------------------------------------


async def test_a_missing_token_names_the_secret(call: Call, slack: httpserver.Server) -> None:
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(slack, {}))
    )
    assert isinstance(error, errors.PermanentError)
    assert "no secret 'token'" in str(error)
    assert slack.calls() == 0


async def test_without_an_integration(call: Call) -> None:
    error = await expect_error(call("postMessage", {"channel": "C1", "text": "x"}, None))
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "integration"


async def test_unusable_base_url(call: Call) -> None:
    error = await expect_error(
        call("postMessage", {"channel": "C1", "text": "x"}, integration(None, baseUrl="ftp://x"))
    )
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "settings.baseUrl"


def test_a_message_needs_content() -> None:
    action = registry.Registry(entry_points=False).action("slack.postMessage")
    with pytest.raises(ValueError, match="give text, blocks or attachments"):
        action.params.model_validate({"channel": "C1"})


# -- autoflow run -----------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: chat}
spec:
  type: slack
  settings: {baseUrl: "%(base)s"}
  secretRef: {name: chat-credentials, keys: [token]}
"""

WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: deploy-notice}
spec:
  inputs:
    version: {type: string, default: "1.4.2"}
  steps:
    - id: announce
      uses: slack.postMessage
      integration: chat
      with:
        channel: C123ABC456
        text: "Deploying ${ inputs.version }"
    - id: done
      uses: slack.updateMessage
      integration: chat
      with:
        channel: ${ steps.announce.output.channel }
        ts: ${ steps.announce.output.ts }
        text: "Deployed ${ inputs.version }"
  outputs:
    ts: ${ steps.announce.output.ts }
"""


def test_autoflow_run_posts_and_updates(slack: httpserver.Server, tmp_path: Path) -> None:
    """chat.postMessage, then chat.update of the message it posted, as `autoflow run`."""
    slack.route("/api/chat.postMessage", httpserver.Reply.with_json(POSTED))

    def update(request: httpserver.Recorded) -> httpserver.Reply:
        args = request.json()
        return httpserver.Reply.with_json({"ok": True, **args})

    slack.route("/api/chat.update", update)
    (tmp_path / "integration.yaml").write_text(INTEGRATION % {"base": slack.url("/api")})
    (tmp_path / "deploy.yaml").write_text(WORKFLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    result = subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", "run", "deploy.yaml",
         "integration.yaml", "--output", "json"],
        cwd=tmp_path, env={**env, "AUTOFLOW_SECRET_CHAT_TOKEN": TOKEN},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outputs"] == {"ts": "1503435956.000247"}
    assert TOKEN not in result.stdout + result.stderr
    assert api_call(slack, "chat.postMessage").json() == {
        "channel": "C123ABC456",
        "text": "Deploying 1.4.2",
    }
    assert api_call(slack, "chat.update").json() == {
        "channel": "C123ABC456",
        "ts": "1503435956.000247",
        "text": "Deployed 1.4.2",
    }
