"""The ``http.request`` action against a real HTTP server on 127.0.0.1.

Each test calls the action as the engine does (parameters validated from the step's ``with``
block, a real ``ActionContext``, the output dumped to journal JSON) and checks what a workflow
author relies on: what reached the server, what the step outputs, and how it fails.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import itertools
import json
import logging
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpserver
import pydantic
import pytest

from autoflow.connectors import registry, sdk
from autoflow.connectors.builtin import http
from autoflow.connectors.sdk import http_core
from autoflow.crds import errors

MIB = 1024 * 1024
TOKEN = "tok-5f2a9c1e"
IDEMPOTENCY_KEY = "run-1:fetch:1"

Call = Callable[..., Awaitable[dict[str, Any]]]


class DictSecrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str:
        if key not in self.values:
            raise errors.PermanentError(f"integration has no secret {key!r}")
        return self.values[key]


def integration(
    settings: dict[str, Any], secrets: dict[str, str] | None = None
) -> sdk.IntegrationInfo:
    return sdk.IntegrationInfo("api", "http", settings, DictSecrets(secrets or {}))


def bearer(server: httpserver.Server) -> sdk.IntegrationInfo:
    return integration({"auth": "bearer", "baseUrl": server.base_url}, {"token": TOKEN})


@pytest.fixture
def other_server() -> Iterator[httpserver.Server]:
    with httpserver.serve() as running:
        yield running


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    """Runs ``http.request`` as one step of a run; the client pool closes with the fixture."""
    action = registry.Registry(entry_points=False).action("http.request")
    pool = sdk.ResourcePool()

    async def run(
        with_: dict[str, Any], integration: sdk.IntegrationInfo | None = None
    ) -> dict[str, Any]:
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id="fetch",
            attempt=1,
            idempotency_key=IDEMPOTENCY_KEY,
            log=logging.LoggerAdapter(logging.getLogger("test.http"), {"run_id": "run-1"}),
            integration=integration,
            pool=pool,
        )
        params = action.params.model_validate(with_)
        output: dict[str, Any] = action.dump_output(await action.func(params, ctx))
        return output

    yield run
    await pool.aclose()


# What reaches the server


async def test_get_sends_query_and_headers(call: Call, server: httpserver.Server) -> None:
    server.route("/search", httpserver.Reply.with_json({"hits": 3}))
    out = await call(
        {
            "url": server.url("/search?lang=en"),
            "query": {"q": "red shoes", "page": 2, "tag": ["a", "b"], "exact": True},
            "headers": {"X-Trace": "abc", "X-Limit": 10},
        }
    )
    assert out["status"] == 200
    assert out["body"] == {"hits": 3}
    seen = server.last("/search")
    assert seen.method == "GET"
    assert seen.query == {
        "lang": ["en"],
        "q": ["red shoes"],
        "page": ["2"],
        "tag": ["a", "b"],
        "exact": ["true"],
    }
    assert seen.headers["x-trace"] == "abc"
    assert seen.headers["x-limit"] == "10"
    assert seen.headers["user-agent"] == "autoflow"
    assert "idempotency-key" not in seen.headers


async def test_url_query_is_kept_verbatim_without_query_param(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/q", httpserver.echo)
    await call({"url": server.url("/q?a=%20b&c=1")})
    assert server.last().query == {"a": [" b"], "c": ["1"]}


async def test_post_json_body(call: Call, server: httpserver.Server) -> None:
    server.route("/orders", httpserver.Reply.with_json({"id": 7}, status=201))
    order = {"sku": "A-1", "qty": 2, "gift": False, "note": "süß", "tags": None}
    out = await call({"url": server.url("/orders"), "method": "POST", "json": order})
    assert out["status"] == 201
    seen = server.last()
    assert seen.method == "POST"
    assert seen.json() == order
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == IDEMPOTENCY_KEY


async def test_json_null_is_a_body(call: Call, server: httpserver.Server) -> None:
    server.route("/v", httpserver.echo)
    await call({"url": server.url("/v"), "method": "PUT", "json": None})
    assert server.last().body == b"null"


async def test_post_form_body(call: Call, server: httpserver.Server) -> None:
    server.route("/login", httpserver.echo)
    await call(
        {
            "url": server.url("/login"),
            "method": "post",
            "form": {"name": "Ada L", "tag": ["x", "y"]},
        }
    )
    seen = server.last()
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form() == {"name": ["Ada L"], "tag": ["x", "y"]}


async def test_post_raw_body_as_written(call: Call, server: httpserver.Server) -> None:
    server.route("/xml", httpserver.echo)
    xml = '<order id="1">\n  <qty>2</qty>\n</order>'
    await call(
        {
            "url": server.url("/xml"),
            "method": "POST",
            "body": xml,
            "headers": {"Content-Type": "application/xml"},
        }
    )
    seen = server.last()
    assert seen.body == xml.encode()
    assert seen.headers["content-type"] == "application/xml"


async def test_raw_body_defaults_to_plain_text(call: Call, server: httpserver.Server) -> None:
    server.route("/t", httpserver.echo)
    await call({"url": server.url("/t"), "method": "POST", "body": "hello"})
    assert server.last().headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_unsafe_methods_send_idempotency_key(
    call: Call, server: httpserver.Server, method: str
) -> None:
    server.route("/thing", httpserver.echo)
    await call({"url": server.url("/thing"), "method": method})
    assert server.last().headers["idempotency-key"] == IDEMPOTENCY_KEY


async def test_idempotency_key_set_by_user_wins(call: Call, server: httpserver.Server) -> None:
    server.route("/thing", httpserver.echo)
    await call(
        {"url": server.url("/thing"), "method": "POST", "headers": {"idempotency-key": "mine"}}
    )
    assert server.last().headers["idempotency-key"] == "mine"


def test_two_bodies_are_rejected_naming_both() -> None:
    with pytest.raises(pydantic.ValidationError, match="json and body"):
        http.RequestParams.model_validate({"url": "http://x/", "json": {}, "body": "x"})


def test_params_use_camel_case_names() -> None:
    params = http.RequestParams.model_validate(
        {
            "url": "http://x/",
            "maxResponseBytes": 5,
            "responseType": "text",
            "followRedirects": False,
            "failOnStatus": False,
            "timeout": "1m",
        }
    )
    assert (params.max_response_bytes, params.response_type) == (5, "text")
    assert (params.follow_redirects, params.fail_on_status) == (False, False)
    with pytest.raises(pydantic.ValidationError, match="timeout"):
        http.RequestParams.model_validate({"url": "http://x/", "timeout": "0s"})


# What the step outputs


async def test_output_shape(call: Call, server: httpserver.Server) -> None:
    server.route("/x", httpserver.Reply.with_json([1, 2], headers={"X-Request-Id": "r-9"}))
    out = await call({"url": server.url("/x")})
    assert set(out) == {"status", "headers", "body", "url", "elapsedMs"}
    assert out["url"] == server.url("/x")
    assert out["headers"]["x-request-id"] == "r-9"
    assert all(name == name.lower() for name in out["headers"])
    assert 0 < out["elapsedMs"] < 5000


@pytest.mark.parametrize(
    ("content_type", "response_type", "expected"),
    [
        ("application/json", "auto", {"a": 1}),
        ("application/problem+json; charset=utf-8", "auto", {"a": 1}),
        ("text/plain", "auto", '{"a": 1}'),
        ("text/plain", "json", {"a": 1}),
        ("application/json", "text", '{"a": 1}'),
    ],
)
async def test_body_decoding(
    call: Call,
    server: httpserver.Server,
    content_type: str,
    response_type: str,
    expected: Any,
) -> None:
    server.route("/d", httpserver.Reply(body='{"a": 1}', headers={"Content-Type": content_type}))
    out = await call({"url": server.url("/d"), "responseType": response_type})
    assert out["body"] == expected


async def test_text_uses_the_declared_charset(call: Call, server: httpserver.Server) -> None:
    body = "café crème".encode("latin-1")
    server.route(
        "/l",
        httpserver.Reply(body=body, headers={"Content-Type": "text/plain; charset=iso-8859-1"}),
    )
    assert (await call({"url": server.url("/l")}))["body"] == "café crème"


async def test_broken_json_is_text_in_auto_and_an_error_in_json(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/b", httpserver.Reply(body="{oops", headers={"Content-Type": "application/json"}))
    assert (await call({"url": server.url("/b")}))["body"] == "{oops"
    with pytest.raises(errors.PermanentError, match="is not JSON") as info:
        await call({"url": server.url("/b"), "responseType": "json"})
    assert info.value.where.field == "with.responseType"


async def test_empty_json_response_is_null(call: Call, server: httpserver.Server) -> None:
    server.route("/e", httpserver.Reply(204, headers={"Content-Type": "application/json"}))
    out = await call({"url": server.url("/e"), "method": "DELETE"})
    assert (out["status"], out["body"]) == (204, None)


async def test_head_has_headers_and_no_body(call: Call, server: httpserver.Server) -> None:
    server.route("/h", httpserver.Reply(body="x" * 50))
    out = await call({"url": server.url("/h"), "method": "HEAD"})
    assert (out["status"], out["body"], out["headers"]["content-length"]) == (200, "", "50")


# How it fails


async def test_429_is_retryable_after_retry_after_seconds(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/r", httpserver.Reply(429, "slow down", {"Retry-After": "2"}))
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": server.url("/r")})
    assert info.value.retryable
    assert info.value.retry_after == 2
    assert "429" in info.value.message


async def test_429_retry_after_http_date(call: Call, server: httpserver.Server) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    date = email.utils.format_datetime(later, usegmt=True)
    server.route("/r", httpserver.Reply(429, headers={"Retry-After": date}))
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": server.url("/r")})
    assert info.value.retry_after is not None
    assert 27 <= info.value.retry_after <= 30


def test_retry_after_parsing() -> None:
    now = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=datetime.UTC)
    assert http.retry_after("120", now) == 120
    assert http.retry_after("Wed, 01 Jan 2025 12:01:30 GMT", now) == 90
    assert http.retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0  # in the past
    assert http.retry_after("86400", now) == 3600  # capped at an hour
    assert http.retry_after("soon", now) is None
    assert http.retry_after(None, now) is None


async def test_503_is_retryable(call: Call, server: httpserver.Server) -> None:
    server.route("/s", httpserver.Reply(503, "maintenance"))
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": server.url("/s")})
    assert info.value.retry_after is None
    assert info.value.message.startswith("HTTP 503 Service Unavailable from GET ")
    assert info.value.message.endswith(": maintenance")
    assert info.value.details["status"] == 503


async def test_404_is_permanent_with_status_and_body(call: Call, server: httpserver.Server) -> None:
    with pytest.raises(errors.PermanentError) as info:
        await call({"url": server.url("/missing")})
    err = info.value
    assert not err.retryable
    assert err.message == (
        f"HTTP 404 Not Found from GET {server.url('/missing')}: no route for GET /missing"
    )
    assert err.where.step == "fetch"
    assert err.details["status"] == 404
    assert err.details["body"] == "no route for GET /missing"
    assert isinstance(err.details["headers"], dict)
    assert err.details["headers"]["content-type"].startswith("text/plain")


async def test_error_body_is_shortened(call: Call, server: httpserver.Server) -> None:
    server.route("/big", httpserver.Reply(400, "e" * 100_000))
    with pytest.raises(errors.PermanentError) as info:
        await call({"url": server.url("/big")})
    assert len(info.value.message) < 400
    assert 0 < len(str(info.value.details["body"])) <= 2000


async def test_fail_on_status_false_outputs_the_error_response(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/gone", httpserver.Reply.with_json({"error": "gone"}, status=410))
    out = await call({"url": server.url("/gone"), "failOnStatus": False})
    assert (out["status"], out["body"]) == (410, {"error": "gone"})


async def test_timeout_waiting_for_response(call: Call, server: httpserver.Server) -> None:
    server.route("/slow", httpserver.Reply(body="late", delay=2))
    started = time.perf_counter()
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": server.url("/slow"), "timeout": "300ms"})
    assert time.perf_counter() - started < 1.5
    assert info.value.message == (
        f"timed out after 300ms waiting for a response from {server.url('/slow')}"
    )


async def test_timeout_reading_a_slow_body(call: Call, server: httpserver.Server) -> None:
    def trickle() -> Iterator[bytes]:
        yield b"first part"
        time.sleep(2)
        yield b"too late"

    server.route("/trickle", lambda _: httpserver.Reply(stream=trickle()))
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": server.url("/trickle"), "timeout": 1})
    assert info.value.message == (
        f"timed out after 1.0s reading the response from {server.url('/trickle')}"
    )


async def test_refused_connection_is_retryable(call: Call) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.RetryableError) as info:
        await call({"url": f"http://127.0.0.1:{port}/x"})
    assert info.value.message.startswith(f"could not connect to http://127.0.0.1:{port}/x: ")
    assert "Traceback" not in info.value.message
    assert info.value.__cause__ is None


async def test_response_over_the_size_limit_fails(call: Call, server: httpserver.Server) -> None:
    server.route("/big", httpserver.Reply(body=b"x" * (2 * MIB)))
    with pytest.raises(errors.PermanentError) as info:
        await call({"url": server.url("/big"), "maxResponseBytes": MIB})
    assert "is 2097152 bytes, larger than maxResponseBytes (1048576 bytes" in info.value.message


async def test_streamed_response_over_the_size_limit_fails(
    call: Call, server: httpserver.Server
) -> None:
    chunks = [b"x" * 65536] * 32  # 2 MiB, chunked: no Content-Length to go by
    server.route("/big", lambda _: httpserver.Reply(stream=iter(chunks)))
    with pytest.raises(errors.PermanentError) as info:
        await call({"url": server.url("/big"), "maxResponseBytes": MIB})
    assert "is larger than maxResponseBytes (1048576 bytes" in info.value.message
    assert info.value.where.field == "with.maxResponseBytes"


async def test_size_limit_stops_reading_an_endless_response(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/endless", lambda _: httpserver.Reply(stream=itertools.repeat(b"x" * 65536)))
    with pytest.raises(errors.PermanentError, match="larger than maxResponseBytes"):
        await call({"url": server.url("/endless"), "maxResponseBytes": MIB, "timeout": "20s"})


async def test_response_of_exactly_the_limit_is_fine(call: Call, server: httpserver.Server) -> None:
    server.route("/full", lambda _: httpserver.Reply(stream=iter([b"y" * MIB])))
    out = await call({"url": server.url("/full"), "maxResponseBytes": MIB})
    assert len(out["body"]) == MIB


# Redirects


async def test_redirects_are_followed(call: Call, server: httpserver.Server) -> None:
    server.route("/old", httpserver.Reply.redirect("/new", 301))
    server.route("/new", httpserver.Reply.with_json({"here": True}))
    out = await call({"url": server.url("/old")})
    assert (out["status"], out["body"], out["url"]) == (200, {"here": True}, server.url("/new"))


async def test_redirect_not_followed_is_an_output(call: Call, server: httpserver.Server) -> None:
    server.route("/old", httpserver.Reply.redirect("/new"))
    out = await call({"url": server.url("/old"), "followRedirects": False})
    assert (out["status"], out["headers"]["location"]) == (302, "/new")
    assert server.calls("/new") == 0


async def test_see_other_after_post_is_a_get(call: Call, server: httpserver.Server) -> None:
    server.route("/submit", httpserver.Reply.redirect("/done", 303))
    server.route("/done", httpserver.echo)
    out = await call({"url": server.url("/submit"), "method": "POST", "json": {"a": 1}})
    assert (out["body"]["method"], out["body"]["body"]) == ("GET", "")


async def test_redirect_loop_fails(call: Call, server: httpserver.Server) -> None:
    server.route("/loop", httpserver.Reply.redirect("/loop"))
    with pytest.raises(errors.PermanentError, match="more than 20 redirects"):
        await call({"url": server.url("/loop")})


@pytest.mark.parametrize(
    ("settings", "secrets", "header"),
    [
        ({"auth": "bearer"}, {"token": TOKEN}, "authorization"),
        ({"auth": "header", "headerName": "X-Api-Key"}, {"apiKey": TOKEN}, "x-api-key"),
    ],
)
async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    call: Call,
    server: httpserver.Server,
    other_server: httpserver.Server,
    settings: dict[str, Any],
    secrets: dict[str, str],
    header: str,
) -> None:
    server.route("/go", httpserver.Reply.redirect(other_server.url("/landing")))
    other_server.route("/landing", httpserver.echo)
    creds = integration({**settings, "baseUrl": server.base_url}, secrets)
    await call({"url": "/go"}, creds)
    assert TOKEN in server.last().headers[header]
    assert header not in other_server.last().headers


async def test_query_credentials_follow_a_same_origin_redirect(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/old", httpserver.Reply.redirect("/new"))
    server.route("/new", httpserver.echo)
    creds = integration(
        {"auth": "query", "queryName": "key", "baseUrl": server.base_url}, {"apiKey": TOKEN}
    )
    out = await call({"url": "/old"}, creds)
    assert server.last("/new").query == {"key": [TOKEN]}
    assert out["url"] == server.url("/new?key=***")


# Auth and secrets


@pytest.mark.parametrize(
    ("settings", "secrets", "header", "expected"),
    [
        ({"auth": "bearer"}, {"token": TOKEN}, "authorization", f"Bearer {TOKEN}"),
        (
            {"auth": "basic"},
            {"username": "ada", "password": "s3cret pw"},
            "authorization",
            "Basic " + base64.b64encode(b"ada:s3cret pw").decode(),
        ),
        ({"auth": "header", "headerName": "X-Api-Key"}, {"apiKey": TOKEN}, "x-api-key", TOKEN),
    ],
)
async def test_header_auth_reaches_the_server(
    call: Call,
    server: httpserver.Server,
    settings: dict[str, Any],
    secrets: dict[str, str],
    header: str,
    expected: str,
) -> None:
    server.route("/me", httpserver.Reply.with_json({"ok": True}))
    await call({"url": server.url("/me")}, integration(settings, secrets))
    assert server.last().headers[header] == expected


async def test_query_auth_reaches_the_server_not_the_output_or_log(
    call: Call, server: httpserver.Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.route("/me", httpserver.Reply.with_json({"ok": True}))
    creds = integration({"auth": "query", "queryName": "api_key"}, {"apiKey": TOKEN})
    with caplog.at_level(logging.DEBUG, logger="test.http"):
        out = await call({"url": server.url("/me"), "query": {"page": 1}}, creds)
    assert server.last().query == {"page": ["1"], "api_key": [TOKEN]}
    assert out["url"] == server.url("/me?page=1&api_key=***")
    assert caplog.records
    assert TOKEN not in caplog.text


async def test_header_set_by_user_wins_over_integration(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/me", httpserver.echo)
    headers = {"Authorization": "Bearer other"}
    await call({"url": server.url("/me"), "headers": headers}, bearer(server))
    assert server.last().headers["authorization"] == "Bearer other"


def _echo_credentials(status: int) -> httpserver.Handler:
    """A server that repeats the credentials it got, in its body and in a header."""

    def handler(request: httpserver.Recorded) -> httpserver.Reply:
        got = {"authorization": request.headers.get("authorization"), "query": request.query}
        echoed = json.dumps(got)
        return httpserver.Reply(
            status, echoed, {"Content-Type": "application/json", "X-Echo": echoed.replace('"', "")}
        )

    return handler


ECHOING_INTEGRATIONS = [
    pytest.param({"auth": "bearer"}, {"token": TOKEN}, id="bearer"),
    pytest.param({"auth": "basic"}, {"username": "ada", "password": TOKEN}, id="basic"),
    pytest.param({"auth": "query", "queryName": "k"}, {"apiKey": f"{TOKEN}/+ &"}, id="query"),
]


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    encoded = [base64.b64encode(f"ada:{v}".encode()).decode() for v in secrets.values()]
    return [s for s in [*secrets.values(), *encoded] if s in text]


@pytest.mark.parametrize(("settings", "secrets"), ECHOING_INTEGRATIONS)
async def test_echoed_secret_is_not_in_the_error(
    call: Call, server: httpserver.Server, settings: dict[str, Any], secrets: dict[str, str]
) -> None:
    server.route("/me", _echo_credentials(401))
    with pytest.raises(errors.PermanentError) as info:
        await call({"url": server.url("/me")}, integration(settings, secrets))
    err = info.value
    assert "HTTP 401 Unauthorized" in err.message
    assert "***" in err.message
    for text in (str(err), err.message, json.dumps(err.details)):
        assert _leaks(text, secrets) == []


@pytest.mark.parametrize(("settings", "secrets"), ECHOING_INTEGRATIONS)
async def test_echoed_secret_is_not_in_the_output(
    call: Call, server: httpserver.Server, settings: dict[str, Any], secrets: dict[str, str]
) -> None:
    server.route("/me", _echo_credentials(200))
    out = await call({"url": server.url("/me")}, integration(settings, secrets))
    assert _leaks(json.dumps(out), secrets) == []
    assert "***" in json.dumps(out["body"])


async def test_unknown_auth_scheme_names_the_setting(call: Call, server: httpserver.Server) -> None:
    with pytest.raises(errors.PermanentError, match="unknown auth scheme 'oauth1'") as info:
        await call({"url": server.url("/")}, integration({"auth": "oauth1"}))
    assert (info.value.where.resource, info.value.where.field) == (
        "Integration/api",
        "settings.auth",
    )
    assert server.calls() == 0


async def test_header_auth_needs_a_header_name(call: Call, server: httpserver.Server) -> None:
    with pytest.raises(errors.PermanentError, match=r"settings\.headerName"):
        await call({"url": server.url("/")}, integration({"auth": "header"}, {"apiKey": "k"}))


async def test_credentials_stay_inside_the_base_url(
    call: Call, server: httpserver.Server, other_server: httpserver.Server
) -> None:
    with pytest.raises(errors.PermanentError, match="outside the Integration's baseUrl") as info:
        await call({"url": other_server.url("/steal")}, bearer(server))
    assert info.value.where.field == "with.url"
    assert other_server.calls() == 0


# URLs


@pytest.mark.parametrize(
    ("base", "url", "path"),
    [
        ("/v1", "users", "/v1/users"),
        ("/v1", "/users", "/v1/users"),
        ("/v1/", "/users", "/v1/users"),
        ("", "users", "/users"),
    ],
)
async def test_relative_url_is_joined_to_base_url(
    call: Call, server: httpserver.Server, base: str, url: str, path: str
) -> None:
    server.route(path, httpserver.echo)
    creds = integration({"baseUrl": server.url(base)})
    out = await call({"url": f"{url}?active=true"}, creds)
    assert out["url"] == server.url(f"{path}?active=true")
    assert server.last().query == {"active": ["true"]}


async def test_relative_url_without_base_url_fails(call: Call) -> None:
    with pytest.raises(errors.PermanentError, match="relative URL") as info:
        await call({"url": "/users"})
    assert info.value.where.field == "with.url"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "localhost:80/x"])
async def test_non_http_url_is_rejected(call: Call, url: str) -> None:
    with pytest.raises(errors.PermanentError, match="must start with http:// or https://") as info:
        await call({"url": url})
    assert (info.value.where.step, info.value.where.field) == ("fetch", "with.url")


async def test_steps_of_a_run_share_one_client(call: Call, server: httpserver.Server) -> None:
    server.route("/a", httpserver.echo)
    await call({"url": server.url("/a")})
    await call({"url": server.url("/a"), "method": "POST"})
    first, second = server.requests
    assert first.peer == second.peer  # one kept-alive connection from the run's one client


async def test_a_retry_sees_the_next_reply(call: Call, server: httpserver.Server) -> None:
    # The action does not loop; each engine attempt is one call that may get a new answer.
    server.queue("/flaky", httpserver.Reply(503, "busy"), method="POST")
    server.route("/flaky", httpserver.Reply.with_json({"ok": True}))
    with pytest.raises(errors.RetryableError):
        await call({"url": server.url("/flaky"), "method": "POST"})
    out = await call({"url": server.url("/flaky"), "method": "POST"})
    assert out["body"] == {"ok": True}
    assert [r.headers["idempotency-key"] for r in server.requests] == [IDEMPOTENCY_KEY] * 2


# Response size: a cap on the limit, and compressed bodies counted as they inflate


def test_max_response_bytes_above_the_maximum_is_refused_naming_step_and_field(
    probe: Any,
) -> None:
    step = {"id": "fetch", "uses": "http.request"}
    too_big = {**step, "with": {"url": "http://x/", "maxResponseBytes": 2_000_000_000}}
    with pytest.raises(errors.ValidationError) as info:
        probe.compile({"steps": [too_big]})
    [problem] = info.value.problems
    assert (problem.where.step, problem.where.field) == ("fetch", "with.maxResponseBytes")
    assert "more than the maximum, 67108864 (64 MiB)" in problem.message
    largest = {
        **step,
        "with": {"url": "http://x/", "maxResponseBytes": http_core.MAX_RESPONSE_BYTES},
    }
    probe.compile({"steps": [largest]})


def _gzip(data: bytes, repeat: int, wbits: int = 31) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(packer.compress(data) for _ in range(repeat)) + packer.flush()


# 256 MiB of zeros in about 256 KiB of gzip: every 64 KiB read inflates to some 64 MiB.
GZIP_BOMB = _gzip(b"\0" * MIB, 256)


async def test_a_gzip_bomb_is_stopped_at_the_limit_without_inflating_it(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/bomb", httpserver.Reply(body=GZIP_BOMB, headers={"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        with pytest.raises(errors.PermanentError) as info:
            await call({"url": server.url("/bomb"), "maxResponseBytes": MIB})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "is larger than maxResponseBytes (1048576 bytes" in info.value.message
    assert info.value.where.field == "with.maxResponseBytes"
    # The limit plus a few buffers, not the 64 MiB one network read inflates to.
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [("gzip", 31), ("deflate", 15), ("deflate", -15)],  # deflate: zlib-wrapped or raw
)
async def test_compressed_bodies_are_decoded_and_their_inflated_size_counts(
    call: Call, server: httpserver.Server, encoding: str, wbits: int
) -> None:
    body = json.dumps({"items": list(range(20000))}).encode()
    packed = _gzip(body, 1, wbits)
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    server.route("/packed", httpserver.Reply(body=packed, headers=headers))
    out = await call({"url": server.url("/packed"), "maxResponseBytes": len(body)})
    assert out["body"] == {"items": list(range(20000))}
    assert server.last().headers["accept-encoding"] == "gzip, deflate"
    with pytest.raises(errors.PermanentError, match="larger than maxResponseBytes"):
        await call({"url": server.url("/packed"), "maxResponseBytes": len(body) - 1})


async def test_an_encoding_not_asked_for_is_refused_clearly(
    call: Call, server: httpserver.Server
) -> None:
    server.route("/br", httpserver.Reply(body=b"\x1b\x00", headers={"Content-Encoding": "br"}))
    with pytest.raises(errors.PermanentError, match="encoded as 'br', which Autoflow does not"):
        await call({"url": server.url("/br")})


async def test_a_corrupt_gzip_body_is_a_clear_error(call: Call, server: httpserver.Server) -> None:
    server.route("/bad", httpserver.Reply(body=b"not gzip", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(errors.PermanentError, match="is not valid gzip"):
        await call({"url": server.url("/bad")})
