"""The ``redis`` connector against a real redis-server: every action, errors, a CLI run.

Actions are called as the engine calls them (``call_action``) through an Integration with the
server's password; each test works under its own key prefix on the session's server, and a
test that takes a server down starts its own (``redis_factory``). What a workflow author
relies on: values as text (numbers and mappings as JSON), expiry, counters, hashes, lists,
streams and pub/sub doing what Redis documents, and failures that say retryable or not, name
the integration and never show the password. The last section runs ``autoflow run`` with an
Integration manifest and the password in ``AUTOFLOW_SECRET_CACHE_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import leaks
import pytest
import redis
import servers

from autoflow.connectors import sdk
from autoflow.crds import errors

CallAction = Callable[..., Any]
MakeIntegration = Callable[..., sdk.IntegrationInfo]
Cli = Callable[..., subprocess.CompletedProcess[str]]


def settings_of(server: servers.Redis, **extra: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, **extra}


@pytest.fixture
def cache(redis_server: servers.Redis, make_integration: MakeIntegration) -> sdk.IntegrationInfo:
    return make_integration(
        "cache", "redis", settings_of(redis_server), {"password": redis_server.password}
    )


@pytest.fixture
def direct(redis_server: servers.Redis) -> Iterator[redis.Redis]:
    """A plain redis-py client, to look at what the actions did."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def key() -> Callable[[str], str]:
    """Key names unique to the test: ``key("orders")``."""
    prefix = f"t-{secrets.token_hex(4)}:"
    return lambda name: prefix + name


@pytest.fixture
def rd(cache: sdk.IntegrationInfo, call_action: CallAction) -> Callable[..., Any]:
    """``await rd(action, with_)``: a redis action through integration ``cache``."""

    async def run(action: str, with_: dict[str, Any], step: str = "step") -> Any:
        return await call_action(f"redis.{action}", with_, cache, step)

    return run


# -- actions ----------------------------------------------------------------------------------


async def test_set_and_get(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    assert await rd("get", {"key": key("a")}) == {"value": None, "encoding": None}
    assert await rd("set", {"key": key("a"), "value": "hello"}) == {"written": True}
    assert await rd("get", {"key": key("a")}) == {"value": "hello", "encoding": "text"}
    # nx: only when the key is not there.
    assert await rd("set", {"key": key("a"), "value": "other", "nx": True}) == {"written": False}
    assert (await rd("get", {"key": key("a")}))["value"] == "hello"
    assert await rd("set", {"key": key("b"), "value": "new", "nx": True}) == {"written": True}


async def test_values_other_than_text_are_written_as_json(
    rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis
) -> None:
    for name, value, stored in [
        ("int", 42, b"42"),
        ("float", 2.5, b"2.5"),
        ("bool", True, b"true"),
        ("doc", {"id": 7, "tags": ["a", "é"]}, '{"id":7,"tags":["a","é"]}'.encode()),
    ]:
        await rd("set", {"key": key(name), "value": value})
        assert direct.get(key(name)) == stored
    out = await rd("get", {"key": key("doc"), "decode": "json"})
    assert out["value"] == {"id": 7, "tags": ["a", "é"]}
    await rd("set", {"key": key("text"), "value": "plain"})
    with pytest.raises(errors.PermanentError, match="is not JSON"):
        await rd("get", {"key": key("text"), "decode": "json"})


async def test_bytes_that_are_not_utf8_come_back_as_base64(
    rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis
) -> None:
    direct.set(key("raw"), b"\xff\x00\x10")
    out = await rd("get", {"key": key("raw")})
    assert out == {"value": base64.b64encode(b"\xff\x00\x10").decode(), "encoding": "base64"}


async def test_set_with_expiry(
    rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis
) -> None:
    await rd("set", {"key": key("s"), "value": "x", "expireSeconds": 60})
    assert 59_000 < direct.pttl(key("s")) <= 60_000
    await rd("set", {"key": key("ms"), "value": "x", "expireSeconds": 0.2})
    assert 0 < direct.pttl(key("ms")) <= 200
    await asyncio.sleep(0.3)
    assert (await rd("get", {"key": key("ms")}))["value"] is None


async def test_delete(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    for name in ("a", "b"):
        await rd("set", {"key": key(name), "value": "x"})
    assert await rd("delete", {"keys": [key("a"), key("b"), key("missing")]}) == {"deleted": 2}
    await rd("set", {"key": key("c"), "value": "x"})
    assert await rd("delete", {"key": key("c")}) == {"deleted": 1}


async def test_incr(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    assert await rd("incr", {"key": key("n")}) == {"value": 1}
    assert await rd("incr", {"key": key("n"), "by": 5}) == {"value": 6}
    assert await rd("incr", {"key": key("n"), "by": -2}) == {"value": 4}
    assert await rd("incr", {"key": key("n"), "by": 2.5}) == {"value": 6.5}
    await rd("set", {"key": key("word"), "value": "abc"})
    with pytest.raises(errors.PermanentError, match="not an integer"):
        await rd("incr", {"key": key("word")})


async def test_concurrent_incr_is_atomic(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    await asyncio.gather(*(rd("incr", {"key": key("hits")}) for _ in range(50)))
    assert (await rd("get", {"key": key("hits")}))["value"] == "50"


async def test_hashes(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    h = key("order")
    assert await rd("hset", {"key": h, "fields": {"id": "A-1", "total": 12.5}}) == {"added": 2}
    assert await rd("hset", {"key": h, "fields": {"total": 13, "state": "paid"}}) == {"added": 1}
    assert await rd("hget", {"key": h, "field": "total"}) == {"value": "13", "encoding": "text"}
    assert (await rd("hget", {"key": h, "field": "missing"}))["value"] is None
    assert await rd("hgetall", {"key": h}) == {
        "fields": {"id": "A-1", "total": "13", "state": "paid"}
    }
    assert await rd("hgetall", {"key": key("none")}) == {"fields": {}}


async def test_lists(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    q = key("queue")
    assert await rd("rpush", {"key": q, "values": ["b", "c"]}) == {"length": 2}
    assert await rd("lpush", {"key": q, "values": ["a", {"n": 0}]}) == {"length": 4}
    assert await rd("lrange", {"key": q}) == {"values": ['{"n":0}', "a", "b", "c"]}
    assert await rd("lrange", {"key": q, "start": 1, "stop": 2}) == {"values": ["a", "b"]}
    assert await rd("lpop", {"key": q}) == {"value": '{"n":0}', "values": ['{"n":0}']}
    assert await rd("lpop", {"key": q, "count": 5}) == {"value": "a", "values": ["a", "b", "c"]}
    assert await rd("lpop", {"key": q}) == {"value": None, "values": []}


async def test_xadd(rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis) -> None:
    s = key("events")
    first = await rd("xadd", {"stream": s, "fields": {"type": "order", "total": 12.5}})
    assert first["id"].count("-") == 1
    entries = direct.xrange(s)
    assert entries == [(first["id"].encode(), {b"type": b"order", b"total": b"12.5"})]
    for n in range(20):
        await rd("xadd", {"stream": s, "fields": {"n": n}, "maxLen": 5})
    assert direct.xlen(s) == 5  # trimmed, the oldest gone
    assert [int(f[b"n"]) for _, f in servers.stream_entries(direct, s)] == [15, 16, 17, 18, 19]
    explicit = await rd("xadd", {"stream": key("ids"), "fields": {"a": 1}, "id": "5-1"})
    assert explicit == {"id": "5-1"}
    with pytest.raises(errors.PermanentError, match="equal or smaller"):
        await rd("xadd", {"stream": key("ids"), "fields": {"a": 1}, "id": "5-1"})


async def test_publish(
    rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis
) -> None:
    channel = key("news")
    assert await rd("publish", {"channel": channel, "message": "nobody listens"}) == {
        "receivers": 0
    }
    listener = direct.pubsub()
    listener.subscribe(channel)
    subscribed = listener.get_message(timeout=2)
    assert subscribed is not None and subscribed["type"] == "subscribe"
    out = await rd("publish", {"channel": channel, "message": {"order": "A-1"}})
    assert out == {"receivers": 1}
    message = listener.get_message(timeout=2)
    assert message is not None and json.loads(message["data"]) == {"order": "A-1"}
    listener.close()


async def test_steps_of_a_run_share_one_client(
    rd: Callable[..., Any], key: Callable[[str], str], direct: redis.Redis
) -> None:
    def ours() -> int:
        return sum(1 for c in direct.client_list() if c["name"] == "autoflow")

    await asyncio.gather(*(rd("incr", {"key": key("n")}) for _ in range(30)))
    assert 1 <= ours() <= 10  # maxConnections


# -- errors -----------------------------------------------------------------------------------


async def test_wrong_type_is_permanent(rd: Callable[..., Any], key: Callable[[str], str]) -> None:
    await rd("rpush", {"key": key("list"), "values": ["a"]})
    with pytest.raises(errors.PermanentError) as caught:
        await rd("get", {"key": key("list")})
    assert caught.value.message.startswith("integration 'cache': Redis at 127.0.0.1:")
    assert "WRONGTYPE" in caught.value.message


async def test_wrong_password_is_permanent_and_never_shown(
    call_action: CallAction, redis_server: servers.Redis, make_integration: MakeIntegration
) -> None:
    wrong = "Wr0ng-redis-pw-51aa"
    cache = make_integration("sessions", "redis", settings_of(redis_server), {"password": wrong})
    with pytest.raises(errors.PermanentError) as caught:
        await call_action("redis.get", {"key": "k"}, cache)
    assert "integration 'sessions'" in caught.value.message
    assert "refused the login" in caught.value.message
    assert wrong not in str(caught.value)
    # No password at all, against a server that wants one.
    cache = make_integration("anonymous", "redis", settings_of(redis_server))
    with pytest.raises(errors.PermanentError, match="gives no password"):
        await call_action("redis.get", {"key": "k"}, cache)


async def test_acl_user_without_permission(
    call_action: CallAction,
    redis_server: servers.Redis,
    make_integration: MakeIntegration,
    direct: redis.Redis,
) -> None:
    user = f"reader-{secrets.token_hex(3)}"
    direct.acl_setuser(
        user,
        enabled=True,
        passwords=["+reader-pw-1"],
        keys=["*"],
        commands=["+get", "+ping", "+client|setname"],
    )
    try:
        cache = make_integration(
            "ro", "redis", settings_of(redis_server, username=user), {"password": "reader-pw-1"}
        )
        assert (await call_action("redis.get", {"key": "nothing"}, cache))["value"] is None
        with pytest.raises(errors.PermanentError, match=r"refused the command: .*no permissions"):
            await call_action("redis.set", {"key": "k", "value": "v"}, cache)
    finally:
        direct.acl_deluser(user)


async def test_a_url_secret_connects_and_is_never_shown(
    call_action: CallAction, redis_server: servers.Redis, make_integration: MakeIntegration
) -> None:
    cache = make_integration("a", "redis", {}, {"url": redis_server.url})
    assert (await call_action("redis.incr", {"key": f"url-{secrets.token_hex(3)}"}, cache)) == {
        "value": 1
    }
    wrong = redis_server.url.replace(redis_server.password, "not-the-pw-0c3e")
    with pytest.raises(errors.PermanentError) as caught:
        await call_action(
            "redis.get", {"key": "k"}, make_integration("b", "redis", {}, {"url": wrong})
        )
    assert "not-the-pw-0c3e" not in str(caught.value)
    garbled = "ftp://user:s3cret-garbled@host/0"
    with pytest.raises(errors.PermanentError, match="secret 'url' is not a Redis URL") as caught:
        await call_action(
            "redis.get", {"key": "k"}, make_integration("c", "redis", {}, {"url": garbled})
        )
    assert "s3cret-garbled" not in str(caught.value)


async def test_connection_refused_is_retryable(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    port = servers.free_port()
    cache = make_integration("cache", "redis", {"host": "127.0.0.1", "port": port})
    with pytest.raises(errors.RetryableError) as caught:
        await call_action("redis.get", {"key": "k"}, cache)
    assert caught.value.message.startswith(f"integration 'cache': Redis at 127.0.0.1:{port}/0")


async def test_a_server_that_goes_down_and_comes_back(
    call_action: CallAction,
    redis_factory: Callable[..., servers.Redis],
    make_integration: MakeIntegration,
) -> None:
    server = redis_factory()
    cache = make_integration("cache", "redis", settings_of(server), {"password": server.password})
    assert await call_action("redis.incr", {"key": "n"}, cache) == {"value": 1}
    server.stop()
    with pytest.raises(errors.RetryableError, match="integration 'cache'"):
        await call_action("redis.incr", {"key": "n"}, cache)
    server.start_again()
    # The run's client reconnects: the retried step succeeds (on an empty server).
    assert await call_action("redis.incr", {"key": "n"}, cache) == {"value": 1}


async def test_out_of_memory_is_retryable(
    call_action: CallAction,
    redis_factory: Callable[..., servers.Redis],
    make_integration: MakeIntegration,
) -> None:
    server = redis_factory("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    cache = make_integration("cache", "redis", settings_of(server), {"password": server.password})
    with pytest.raises(errors.RetryableError, match="used memory > 'maxmemory'"):
        await call_action("redis.set", {"key": "k", "value": "v"}, cache)


async def test_tls(
    call_action: CallAction,
    redis_factory: Callable[..., servers.Redis],
    make_integration: MakeIntegration,
    tls_certificate: servers.Certificate,
) -> None:
    server = redis_factory(tls=True)
    assert server.tls_port is not None
    settings = {"host": "localhost", "port": server.tls_port, "tls": True}
    ca = tls_certificate.cert_file.read_text()
    secret = {"password": server.password}
    cache = make_integration("tls", "redis", {**settings, "tlsCaCert": ca}, secret)
    assert await call_action("redis.set", {"key": "k", "value": "v"}, cache) == {"written": True}
    # Without the CA the certificate is not trusted: permanent, and it says what to set.
    untrusted = make_integration("untrusted", "redis", settings, secret)
    with pytest.raises(errors.PermanentError, match="tlsCaCert"):
        await call_action("redis.get", {"key": "k"}, untrusted)
    insecure = make_integration("insecure", "redis", {**settings, "tlsVerify": False}, secret)
    assert (await call_action("redis.get", {"key": "k"}, insecure))["value"] == "v"


async def test_unusable_settings_name_the_integration_field(
    call_action: CallAction, make_integration: MakeIntegration
) -> None:
    cache = make_integration("cache", "redis", {"host": "127.0.0.1", "db": -1})
    with pytest.raises(errors.PermanentError) as caught:
        await call_action("redis.get", {"key": "k"}, cache)
    assert caught.value.where.resource == "Integration/cache"
    assert caught.value.where.field == "settings.db"


async def test_a_step_without_integration(call_action: CallAction) -> None:
    with pytest.raises(errors.PermanentError, match="needs an Integration of type redis"):
        await call_action("redis.get", {"key": "k"})


# -- autoflow run -----------------------------------------------------------------------------

INTEGRATION = """\
apiVersion: autoflow.dev/v1alpha1
kind: Integration
metadata: {name: cache}
spec:
  type: redis
  settings: {host: 127.0.0.1, port: %(port)d}
  secretRef: {name: cache-credentials, keys: [password]}
"""

QUEUE = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: queue}
spec:
  inputs:
    prefix: {type: string, required: true}
    orders:
      type: array
      default: [{id: A-1, total: 12.5}, {id: A-2, total: 99}, {id: A-3, total: 7}]
  retry: {maxAttempts: 3, initialDelay: 100ms, jitter: false}
  steps:
    - id: enqueue
      uses: redis.rpush
      integration: cache
      foreach: ${ inputs.orders }
      with: {key: "${ inputs.prefix }:orders", values: ["${ item.id }"]}
    - id: count
      uses: redis.incr
      integration: cache
      with: {key: "${ inputs.prefix }:seen", by: "${ len(inputs.orders) }"}
    - id: remember
      uses: redis.hset
      integration: cache
      with:
        key: "${ inputs.prefix }:last"
        fields: {id: "${ inputs.orders[-1].id }", total: "${ inputs.orders[-1].total }"}
    - id: announce
      uses: redis.xadd
      integration: cache
      with: {stream: "${ inputs.prefix }:events", fields: {type: batch, size: 3}}
    - id: read
      uses: redis.lrange
      integration: cache
      with: {key: "${ inputs.prefix }:orders"}
  outputs:
    queued: ${ steps.read.output.values }
    seen: ${ steps.count.output.value }
    lengths: ${ [r.length for r in steps.enqueue.output] }
"""


@dataclasses.dataclass
class RunFiles:
    directory: Path
    args: list[str]


def run_files(directory: Path, port: int) -> RunFiles:
    (directory / "integration.yaml").write_text(INTEGRATION % {"port": port})
    (directory / "queue.yaml").write_text(QUEUE)
    prefix = f"cli-{secrets.token_hex(4)}"
    args = ["run", "queue.yaml", "integration.yaml", "-i", f"prefix={prefix}", "--output", "json"]
    return RunFiles(directory, args)


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_autoflow_run_queues_counts_and_reads(
    autoflow_cli: Cli, redis_server: servers.Redis, tmp_path: Path, direct: redis.Redis
) -> None:
    files = run_files(tmp_path, redis_server.port)
    env = {"AUTOFLOW_SECRET_CACHE_PASSWORD": redis_server.password}
    result = autoflow_cli(*files.args, env=env, cwd=tmp_path)
    doc = run_json(result)
    assert result.returncode == 0, result.stdout
    assert doc["outputs"] == {"queued": ["A-1", "A-2", "A-3"], "seen": 3, "lengths": [1, 2, 3]}
    prefix = files.args[4].removeprefix("prefix=")
    assert direct.hgetall(f"{prefix}:last") == {b"id": b"A-3", b"total": b"7"}
    assert direct.xlen(f"{prefix}:events") == 1
    assert redis_server.password not in result.stdout + result.stderr


def test_autoflow_run_wrong_password_is_not_retried(
    autoflow_cli: Cli, redis_server: servers.Redis, tmp_path: Path
) -> None:
    files = run_files(tmp_path, redis_server.port)
    wrong = "definitely-wrong-9b2e"
    result = autoflow_cli(*files.args, env={"AUTOFLOW_SECRET_CACHE_PASSWORD": wrong}, cwd=tmp_path)
    doc = run_json(result)
    assert result.returncode == 1
    step = {s["id"]: s for s in doc["steps"]}["enqueue"]
    assert step["attempts"] == 1
    assert "integration 'cache'" in step["error"]
    assert wrong not in result.stdout + result.stderr


def test_autoflow_run_server_down_is_retried_under_the_step_policy(
    autoflow_cli: Cli, redis_server: servers.Redis, tmp_path: Path
) -> None:
    files = run_files(tmp_path, servers.free_port())
    env = {"AUTOFLOW_SECRET_CACHE_PASSWORD": redis_server.password}
    result = autoflow_cli(*files.args, env=env, cwd=tmp_path)
    doc = run_json(result)
    assert result.returncode == 1
    step = {s["id"]: s for s in doc["steps"]}["enqueue"]
    assert step["attempts"] == 3
    assert "integration 'cache': Redis at 127.0.0.1:" in step["error"]
    assert "Error 111 connecting to 127.0.0.1" in step["error"]  # ECONNREFUSED


# -- secrets the server echoes back ------------------------------------------------------------


async def test_a_password_the_server_echoes_never_reaches_output_or_log(
    redis_server: servers.Redis, tmp_path: Path
) -> None:
    """Values holding the ACL user's password, raw, URL-encoded, form-encoded and
    JSON-encoded, are masked in outputs, logs and the journal. (Redis's error replies do not
    quote stored values, so outputs are where an echo shows.)"""
    user = f"leaky-{secrets.token_hex(4)}"
    prefix = f"echo:{user}:"
    forms = leaks.forms(leaks.SECRET)
    admin = redis.Redis.from_url(redis_server.url)
    # redis-py leaves execute_command unannotated.
    admin.execute_command("ACL", "SETUSER", user, "on", f">{leaks.SECRET}", "~*", "+@all")  # type: ignore[no-untyped-call]
    # A copy that mypy types with redis-py's own key type (a Mapping's keys are invariant).
    admin.hset(f"{prefix}forms", mapping={name: form for name, form in forms.items()})
    admin.set(f"{prefix}all", " ".join(forms.values()))
    settings = {"host": redis_server.host, "port": redis_server.port, "username": user}
    steps = [
        {"id": "one", "uses": "redis.get", "integration": "kv", "with": {"key": f"{prefix}all"}},
        {"id": "map", "uses": "redis.hgetall", "integration": "kv",
         "with": {"key": f"{prefix}forms"}},
    ]  # fmt: skip
    try:
        manifests = leaks.manifests("kv", "redis", settings, steps)
        shown = await leaks.run_locally(tmp_path, manifests, {"kv": {"password": leaks.SECRET}})
    finally:
        admin.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
        admin.delete(f"{prefix}forms", f"{prefix}all")
        admin.close()
    leaked = list(leaks.lines_with(shown.text, leaks.SECRET))
    assert leaked == [], leaked
    assert shown.result.steps["one"].output["value"] == "*** *** *** ***"
    assert shown.result.steps["map"].output["fields"] == dict.fromkeys(forms, "***")
