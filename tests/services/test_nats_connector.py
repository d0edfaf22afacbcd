"""The ``nats`` connector against a real nats-server with JetStream.

Actions are called as the engine calls them (``call_action``); a nats-py client of the test's
own plays the other side: a subscriber that receives what ``publish`` sent, a responder for
``request``, and a JetStream stream whose contents show that a step retried with the same
message id is stored once. Servers with authentication and permissions come from
``nats_factory`` with a configuration file. What a workflow author relies on: messages arrive
as sent, failures say retryable or not, name the integration and never show a credential. The
last section runs ``autoflow run`` with an Integration manifest and the token in
``AUTOFLOW_SECRET_BUS_TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import leaks
import nats
import nats.errors
import nats.js.errors
import pytest
import servers
from nats.aio import client as nats_client
from nats.aio import msg as nats_msg

from autoflow.connectors import sdk
from autoflow.connectors.builtin import nats as nats_connector
from autoflow.crds import errors

CallAction = Callable[..., Awaitable[Any]]
MakeIntegration = Callable[..., sdk.IntegrationInfo]
NatsFactory = Callable[..., servers.Nats]
Cli = Callable[..., subprocess.CompletedProcess[str]]

TOKEN = "nats-token-7e3f19"
ALICE_PASSWORD = "alice-pw-5b2c"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def peer(nats_server: servers.Nats) -> AsyncIterator[nats_client.Client]:
    """The test's own connection to the session server: subscriber, responder, stream admin."""
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
def bus(nats_server: servers.Nats, make_integration: MakeIntegration) -> sdk.IntegrationInfo:
    return make_integration("bus", "nats", {"servers": nats_server.url})


async def next_message(sub: Any, timeout: float = 2.0) -> nats_msg.Msg:
    message: nats_msg.Msg = await sub.next_msg(timeout=timeout)
    return message


async def expect_error(call: Awaitable[Any]) -> errors.ConnectorError:
    with pytest.raises(errors.ConnectorError) as caught:
        await call
    return caught.value


# -- publish ----------------------------------------------------------------------------------


async def test_publish_json_with_headers_reaches_a_subscriber(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("orders.created.")
    sub = await peer.subscribe(subject)
    await peer.flush()
    out = await call_action(
        "nats.publish",
        {"subject": subject, "data": {"id": 7, "total": 12.5}, "headers": {"X-Shop": "eu", "N": 3}},
        bus,
    )
    message = await next_message(sub)
    assert json.loads(message.data) == {"id": 7, "total": 12.5}
    assert message.headers == {"X-Shop": "eu", "N": "3"}
    assert out == {"subject": subject, "bytes": len(message.data)}


async def test_publish_text_as_it_is_and_no_data_as_an_empty_message(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("notes.")
    sub = await peer.subscribe(subject)
    await peer.flush()
    await call_action("nats.publish", {"subject": subject, "data": "héllo {not json"}, bus)
    await call_action("nats.publish", {"subject": subject}, bus)
    assert (await next_message(sub)).data == "héllo {not json".encode()
    assert (await next_message(sub)).data == b""


async def test_steps_of_a_run_share_one_connection(
    call_action: CallAction, make_integration: MakeIntegration, nats_factory: NatsFactory
) -> None:
    monitor = servers.free_port()
    server = nats_factory("-m", str(monitor))
    bus = make_integration("bus", "nats", {"servers": server.url, "name": "shop-run"})
    for step in ("a", "b", "c"):
        await call_action("nats.publish", {"subject": "shared", "data": step}, bus, step)
    async with httpx.AsyncClient() as client:
        connz = (await client.get(f"http://127.0.0.1:{monitor}/connz")).json()
    assert [c.get("name") for c in connz["connections"]] == ["shop-run"]
    assert connz["connections"][0]["in_msgs"] == 3


# -- request/reply ----------------------------------------------------------------------------


async def test_request_outputs_the_responders_reply(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("prices.quote.")

    async def respond(msg: nats_msg.Msg) -> None:
        asked = json.loads(msg.data)
        await msg.respond(
            json.dumps({"sku": asked["sku"], "price": 9.99}).encode(),
        )

    await peer.subscribe(subject, cb=respond)
    await peer.flush()
    out = await call_action(
        "nats.request", {"subject": subject, "data": {"sku": "A-1"}, "timeout": "2s"}, bus
    )
    assert out["data"] == {"sku": "A-1", "price": 9.99}
    assert out["encoding"] == "json"
    assert out["subject"].startswith("_INBOX.")


async def test_request_reply_as_text_headers_and_binary(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("echo.")
    replies = iter([b"42", b"\xff\xfe raw"])

    async def respond(msg: nats_msg.Msg) -> None:
        assert msg.headers == {"X-Ask": "1"}
        await peer.publish(msg.reply, next(replies), headers={"X-Answer": "yes"})

    await peer.subscribe(subject, cb=respond)
    await peer.flush()
    with_ = {"subject": subject, "data": "q", "headers": {"X-Ask": "1"}, "responseType": "text"}
    out = await call_action("nats.request", with_, bus)
    assert (out["data"], out["encoding"], out["headers"]) == ("42", "text", {"X-Answer": "yes"})
    out = await call_action("nats.request", {**with_, "responseType": "auto"}, bus)
    assert (out["data"], out["encoding"]) == ("//4gcmF3", "base64")


async def test_request_without_responders_is_retryable_and_says_so(
    call_action: CallAction, bus: sdk.IntegrationInfo
) -> None:
    subject = unique("nobody.home.")
    error = await expect_error(call_action("nats.request", {"subject": subject}, bus))
    assert isinstance(error, errors.RetryableError)
    assert f"no responders on subject {subject!r}" in str(error)
    assert "integration 'bus'" in str(error)


async def test_request_timeout_is_retryable(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("slow.")
    await peer.subscribe(subject)  # listens, never answers
    await peer.flush()
    error = await expect_error(
        call_action("nats.request", {"subject": subject, "timeout": "200ms"}, bus)
    )
    assert isinstance(error, errors.RetryableError)
    assert f"requesting on subject {subject!r}: no reply within 0.2s" in str(error)


async def test_request_reply_that_is_not_json_when_json_is_wanted(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client
) -> None:
    subject = unique("text.")

    async def respond(msg: nats_msg.Msg) -> None:
        await msg.respond(b"plain words")

    await peer.subscribe(subject, cb=respond)
    await peer.flush()
    error = await expect_error(
        call_action("nats.request", {"subject": subject, "responseType": "json"}, bus)
    )
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "with.responseType"


# -- JetStream --------------------------------------------------------------------------------


@pytest.fixture
async def stream(peer: nats_client.Client) -> AsyncIterator[str]:
    """A fresh stream capturing ``<name>.>``; its name is the subject prefix too."""
    name = unique("ORDERS_")
    js = peer.jetstream()
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    yield name
    await js.delete_stream(name)


async def stored(peer: nats_client.Client, stream: str) -> int:
    info = await peer.jetstream().stream_info(stream)
    return int(info.state.messages)


async def test_jetstream_publish_stores_and_acknowledges(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client, stream: str
) -> None:
    out = await call_action(
        "nats.jetstreamPublish", {"subject": f"{stream}.new", "data": {"id": 1}}, bus
    )
    assert out == {"stream": stream, "seq": 1, "duplicate": False, "msgId": "run-1:step"}
    message = await peer.jetstream().get_msg(stream, 1)
    assert json.loads(message.data or b"") == {"id": 1}
    assert (message.headers or {})["Nats-Msg-Id"] == "run-1:step"


async def test_a_retried_step_is_stored_once(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client, stream: str
) -> None:
    """Two attempts of one step share the idempotency key, so JetStream keeps one message."""
    with_ = {"subject": f"{stream}.new", "data": {"id": 1}}
    first = await call_action("nats.jetstreamPublish", with_, bus, "charge")
    again = await call_action("nats.jetstreamPublish", with_, bus, "charge")
    assert first["duplicate"] is False
    assert again == {**first, "duplicate": True}
    assert await stored(peer, stream) == 1
    # Another step (another unit of work) is another message.
    other = await call_action("nats.jetstreamPublish", with_, bus, "refund")
    assert (other["seq"], other["duplicate"]) == (2, False)
    assert await stored(peer, stream) == 2


async def test_an_explicit_msg_id_de_duplicates_across_steps(
    call_action: CallAction, bus: sdk.IntegrationInfo, peer: nats_client.Client, stream: str
) -> None:
    with_ = {"subject": f"{stream}.new", "data": "x", "msgId": "order-77"}
    await call_action("nats.jetstreamPublish", with_, bus, "one")
    out = await call_action("nats.jetstreamPublish", with_, bus, "two")
    assert (out["duplicate"], out["msgId"]) == (True, "order-77")
    assert await stored(peer, stream) == 1


async def test_jetstream_publish_without_a_stream_is_permanent(
    call_action: CallAction, bus: sdk.IntegrationInfo
) -> None:
    subject = unique("nostream.")
    error = await expect_error(call_action("nats.jetstreamPublish", {"subject": subject}, bus))
    assert isinstance(error, errors.PermanentError)
    assert f"no JetStream stream captures subject {subject!r}" in str(error)


async def test_jetstream_publish_to_another_stream_than_expected_is_permanent(
    call_action: CallAction, bus: sdk.IntegrationInfo, stream: str
) -> None:
    error = await expect_error(
        call_action(
            "nats.jetstreamPublish", {"subject": f"{stream}.new", "stream": "ELSEWHERE"}, bus
        )
    )
    assert isinstance(error, errors.PermanentError)
    assert "JetStream error 400" in str(error)
    assert error.where.field == "with.stream"


# -- credentials and permissions --------------------------------------------------------------

ACCOUNTS = """\
authorization {
  users = [
    {user: alice, password: "%(password)s",
     permissions: {publish: {allow: ["orders.>", "_INBOX.>"]}, subscribe: {allow: ["_INBOX.>"]}}}
    {user: bob, password: "%(password)s",
     permissions: {publish: {allow: ["orders.>"]}, subscribe: {deny: [">"]}}}
  ]
}
"""


@pytest.fixture
def secured(nats_factory: NatsFactory, tmp_path: Path) -> servers.Nats:
    """A server where alice may publish on orders.> only, and bob may not receive replies."""
    conf = tmp_path / "accounts.conf"
    conf.write_text(ACCOUNTS % {"password": ALICE_PASSWORD})
    return nats_factory("-c", str(conf))


async def test_user_and_password(
    call_action: CallAction, make_integration: MakeIntegration, secured: servers.Nats
) -> None:
    alice = make_integration(
        "bus", "nats", {"servers": [secured.url]}, {"user": "alice", "password": ALICE_PASSWORD}
    )
    out = await call_action("nats.publish", {"subject": "orders.new", "data": 1}, alice)
    assert out["bytes"] == 1


async def test_wrong_password_is_permanent_and_not_shown(
    call_action: CallAction, make_integration: MakeIntegration, secured: servers.Nats
) -> None:
    wrong = "not-alices-pw-31"
    intruder = make_integration(
        "bus", "nats", {"servers": secured.url}, {"user": "alice", "password": wrong}
    )
    error = await expect_error(call_action("nats.publish", {"subject": "orders.new"}, intruder))
    assert isinstance(error, errors.PermanentError)
    assert "integration 'bus': NATS at nats://127.0.0.1" in str(error)
    assert "refused the credentials" in str(error)
    assert wrong not in str(error) + repr(error.details)


async def test_a_permissions_violation_is_permanent(
    call_action: CallAction, make_integration: MakeIntegration, secured: servers.Nats
) -> None:
    alice = make_integration(
        "bus", "nats", {"servers": secured.url}, {"user": "alice", "password": ALICE_PASSWORD}
    )
    error = await expect_error(call_action("nats.publish", {"subject": "payroll.run"}, alice))
    assert isinstance(error, errors.PermanentError)
    assert "refused publishing to subject 'payroll.run': permissions violation" in str(error)
    assert error.where.field == "with.subject"
    # The refusal does not wait for the request's timeout.
    started = asyncio.get_running_loop().time()
    error = await expect_error(
        call_action("nats.request", {"subject": "payroll.ask", "timeout": "10s"}, alice)
    )
    assert isinstance(error, errors.PermanentError)
    assert "refused requesting on subject 'payroll.ask'" in str(error)
    assert asyncio.get_running_loop().time() - started < 5
    # The connection stays usable for what is allowed.
    assert (await call_action("nats.publish", {"subject": "orders.ok"}, alice))["bytes"] == 0


async def test_a_request_whose_reply_inbox_is_refused_is_permanent(
    call_action: CallAction, make_integration: MakeIntegration, secured: servers.Nats
) -> None:
    bob = make_integration(
        "bus", "nats", {"servers": secured.url}, {"user": "bob", "password": ALICE_PASSWORD}
    )
    error = await expect_error(
        call_action("nats.request", {"subject": "orders.ask", "timeout": "10s"}, bob)
    )
    assert isinstance(error, errors.PermanentError)
    assert "permissions violation for subscription to '_inbox." in str(error)
    # Publishing needs no inbox: it is not refused for that.
    assert (await call_action("nats.publish", {"subject": "orders.new"}, bob))["bytes"] == 0


async def test_token(
    call_action: CallAction, make_integration: MakeIntegration, nats_factory: NatsFactory
) -> None:
    server = nats_factory("--auth", TOKEN)
    good = make_integration("bus", "nats", {"servers": server.url}, {"token": TOKEN})
    assert (await call_action("nats.publish", {"subject": "a.b"}, good))["subject"] == "a.b"
    bad = make_integration("other", "nats", {"servers": server.url}, {"token": "wrong-token-1"})
    error = await expect_error(call_action("nats.publish", {"subject": "a.b"}, bad))
    assert isinstance(error, errors.PermanentError)
    assert "wrong-token-1" not in str(error)
    assert TOKEN not in str(error)


# -- outages ----------------------------------------------------------------------------------


async def test_no_server_is_retryable(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    down = make_integration("bus", "nats", {"servers": f"nats://127.0.0.1:{servers.free_port()}"})
    started = asyncio.get_running_loop().time()
    error = await expect_error(call_action("nats.publish", {"subject": "a"}, down))
    assert isinstance(error, errors.RetryableError)
    assert "integration 'bus'" in str(error)
    assert "no server could be reached" in str(error)
    assert asyncio.get_running_loop().time() - started < 10  # the step's policy waits, not us


async def test_a_server_restart_between_steps(
    call_action: CallAction, make_integration: MakeIntegration, nats_factory: NatsFactory
) -> None:
    server = nats_factory()
    bus = make_integration("bus", "nats", {"servers": server.url, "timeout": "1s"})
    await call_action("nats.publish", {"subject": "a"}, bus, "before")
    server.stop()
    server.start_again()
    # nats-py reconnects, or gives up and the next step connects anew; meanwhile a step
    # fails as retryable (a publish buffered during the reconnect is not confirmed).
    for attempt in range(20):
        try:
            await call_action("nats.publish", {"subject": "a"}, bus, "after")
            break
        except errors.RetryableError:
            assert attempt < 19
            await asyncio.sleep(0.25)


async def test_after_a_long_outage_the_next_step_connects_anew(
    call_action: CallAction, make_integration: MakeIntegration, nats_factory: NatsFactory
) -> None:
    server = nats_factory()
    bus = make_integration("bus", "nats", {"servers": server.url, "timeout": "1s"})
    await call_action("nats.publish", {"subject": "a"}, bus, "before")
    server.stop()
    await asyncio.sleep(0.3)  # nats-py has seen the connection go and is reconnecting
    # The message would wait in nats-py's buffer: not reported as published.
    error = await expect_error(call_action("nats.publish", {"subject": "a"}, bus, "during"))
    assert isinstance(error, errors.RetryableError)
    assert "publishing to subject 'a'" in str(error)
    await asyncio.sleep(3)  # longer than nats-py's reconnect attempts: it closes the client
    server.start_again()
    out = await call_action("nats.publish", {"subject": "a"}, bus, "after")
    assert out["subject"] == "a"


async def test_unusable_settings_name_the_field(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    broken = make_integration("bus", "nats", {"servers": [], "colour": "red"})
    error = await expect_error(call_action("nats.publish", {"subject": "a"}, broken))
    assert isinstance(error, errors.PermanentError)
    assert "integration 'bus' has unusable settings: servers" in str(error)


async def test_a_step_without_an_integration(call_action: CallAction) -> None:
    error = await expect_error(call_action("nats.publish", {"subject": "a"}))
    assert isinstance(error, errors.PermanentError)
    assert error.where.field == "integration"


def failure(exc: BaseException) -> errors.ConnectorError:
    settings = nats_connector.Settings(servers=["nats://u:pw-in-url-1@bus.example.com:4222"])
    conn = nats_connector.Connection("bus", settings, {}, ["s3cret-token"])
    ctx = sdk.ActionContext(
        run_id="run-1",
        step_id="send",
        attempt=1,
        idempotency_key="run-1:send",
        log=logging.LoggerAdapter(logging.getLogger("test.nats"), {}),
        integration=None,
        pool=sdk.ResourcePool(),
    )
    return conn.failure(exc, ctx, "publishing to", "a.b")


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (nats.errors.ConnectionClosedError(), errors.RetryableError, "connection closed"),
        (nats.errors.StaleConnectionError(), errors.RetryableError, "stale connection"),
        (ConnectionResetError("reset by peer"), errors.RetryableError, "reset by peer"),
        (nats.errors.MaxPayloadError(), errors.PermanentError, "maximum payload"),
        (nats.errors.BadSubjectError(), errors.PermanentError, "bad subject"),
        (nats.js.errors.ServiceUnavailableError(code=503), errors.RetryableError, "503"),
        (
            nats.js.errors.BadRequestError(code=400, err_code=10054, description="maximum "
            "message size exceeded for s3cret-token"),
            errors.PermanentError,
            "err_code 10054",
        ),
    ],
)  # fmt: skip
def test_nats_errors_are_classified(
    exc: BaseException, kind: type[errors.ConnectorError], text: str
) -> None:
    error = failure(exc)
    assert type(error) is kind
    assert text in str(error)
    # Messages name the servers without the credentials a URL may carry.
    assert "integration 'bus': NATS at nats://bus.example.com:4222" in str(error)
    assert "pw-in-url-1" not in str(error)
    assert "s3cret-token" not in str(error)


# -- autoflow run -----------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: bus}
spec:
  type: nats
  settings: {servers: "%(url)s"}
  secretRef: {name: bus-credentials, keys: [token]}
"""

WORKFLOW = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: announce}
spec:
  inputs:
    orderId: {type: string, default: A-17}
  steps:
    - id: store
      uses: nats.jetstreamPublish
      integration: bus
      with:
        subject: %(stream)s.created
        data: {orderId: "${ inputs.orderId }"}
    - id: notify
      uses: nats.publish
      integration: bus
      with:
        subject: %(stream)s.notified
        data: "order ${ inputs.orderId } stored at ${ steps.store.output.seq }"
        headers: {X-Priority: 1}
  outputs:
    seq: ${ steps.store.output.seq }
    duplicate: ${ steps.store.output.duplicate }
"""


def test_autoflow_run_publishes_to_jetstream(
    autoflow_cli: Cli, nats_factory: NatsFactory, tmp_path: Path
) -> None:
    server = nats_factory("--auth", TOKEN)
    name = unique("SHOP_")

    async def make_stream() -> None:
        nc = await nats.connect(server.url, token=TOKEN)
        await nc.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
        await nc.close()

    async def contents() -> list[tuple[bytes, dict[str, str]]]:
        nc = await nats.connect(server.url, token=TOKEN)
        js = nc.jetstream()
        found = [await js.get_msg(name, seq) for seq in (1, 2)]
        await nc.close()
        return [(m.data or b"", m.headers or {}) for m in found]

    asyncio.run(make_stream())
    (tmp_path / "integration.yaml").write_text(INTEGRATION % {"url": server.url})
    (tmp_path / "announce.yaml").write_text(WORKFLOW % {"stream": name})
    result = autoflow_cli(
        "run", "announce.yaml", "integration.yaml", "--output", "json",
        env={"AUTOFLOW_SECRET_BUS_TOKEN": TOKEN}, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outputs"] == {"seq": 1, "duplicate": False}
    assert TOKEN not in result.stdout + result.stderr
    (stored, headers), (notice, notice_headers) = asyncio.run(contents())
    assert (stored, notice) == (b'{"orderId":"A-17"}', b"order A-17 stored at 1")
    assert headers["Nats-Msg-Id"].endswith(":store")  # the step's idempotency key
    assert notice_headers == {"X-Priority": "1"}


def test_autoflow_run_with_a_wrong_token_fails_without_showing_it(
    autoflow_cli: Cli, nats_factory: NatsFactory, tmp_path: Path
) -> None:
    server = nats_factory("--auth", TOKEN)
    wrong = "wrong-token-5a5a"
    (tmp_path / "integration.yaml").write_text(INTEGRATION % {"url": server.url})
    (tmp_path / "announce.yaml").write_text(WORKFLOW % {"stream": "NONE"})
    result = autoflow_cli(
        "run", "announce.yaml", "integration.yaml",
        env={"AUTOFLOW_SECRET_BUS_TOKEN": wrong}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "step 'store' failed: integration 'bus'" in result.stdout
    assert "refused the credentials" in result.stdout
    assert wrong not in result.stdout + result.stderr


# -- secrets the server echoes back ------------------------------------------------------------


async def test_a_token_a_responder_echoes_never_reaches_output_or_log(
    nats_factory: NatsFactory, tmp_path: Path
) -> None:
    """A reply repeating the token, raw, URL-encoded, form-encoded and JSON-encoded, in its
    data and a header, is masked in outputs, logs and the journal."""
    server = nats_factory("--auth", leaks.SECRET)
    forms = leaks.forms(leaks.SECRET)
    responder = await nats.connect(server.url, token=leaks.SECRET)

    async def answer(msg: nats_msg.Msg) -> None:
        body = json.dumps({"forms": forms}).encode()
        await responder.publish(msg.reply, body, headers={"X-Echo": forms["url-encoded"]})

    await responder.subscribe("echo.secret", cb=answer)
    steps = [
        {"id": "ask", "uses": "nats.request", "integration": "bus",
         "with": {"subject": "echo.secret", "timeout": "5s"}},
    ]  # fmt: skip
    try:
        manifests = leaks.manifests("bus", "nats", {"servers": server.url}, steps)
        shown = await leaks.run_locally(tmp_path, manifests, {"bus": {"token": leaks.SECRET}})
    finally:
        await responder.close()
    leaked = list(leaks.lines_with(shown.text, leaks.SECRET))
    assert leaked == [], leaked
    output = shown.result.steps["ask"].output
    assert output["data"] == {"forms": dict.fromkeys(forms, "***")}
    assert output["headers"]["X-Echo"] == "***"
