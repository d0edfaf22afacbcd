"""Health probes of the protocol connectors against real PostgreSQL, Redis, NATS and SMTP.

Each probe runs as the operator and ``autoflow integrations test`` run it
(``runners.access.probe.check`` on an Integration resource, secrets through the local provider, see
``tests/probing.py``): with the right credentials it is Ready and says what answered; a wrong
password is ``CredentialsRejected`` (and the password is in no message), a port nobody
listens on is ``Unreachable``, a server that accepts connections but never says a word is
``Timeout`` at the probe's timeout, a credential the connector needs and cannot find is
``SecretMissing``. The last test runs ``autoflow integrations test`` on all four at once.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import probing
import pytest
import servers
import yaml

from autoflow.connectors import registry
from autoflow.crds import integration
from autoflow.runners.access import probe

BUILTIN = registry.Registry(entry_points=False)
WRONG = "wrong-pw-5c1e9a"
Cli = Callable[..., subprocess.CompletedProcess[str]]


async def check(
    intg: integration.Integration, secrets: dict[str, str] | None = None, timeout: float = 10.0
) -> probe.Health:
    return await probing.check(intg, secrets, registry=BUILTIN, timeout=timeout)


def closed_port() -> int:
    return servers.free_port()  # bound and released: nothing listens there now


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never sends or reads a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    listener.close()


async def times_out(intg: integration.Integration, secrets: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    health = await check(intg, secrets, timeout=0.5)
    took = time.monotonic() - started
    assert (health.ready, health.reason) == (False, "Timeout"), health
    assert "no answer within 0.5s" in health.message
    assert took < 2.5, took


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg(server: servers.Postgres | None = None, **settings: Any) -> integration.Integration:
    values = (
        {"host": server.host, "port": server.port, "database": server.dbname, "user": server.user}
        if server
        else {}
    )
    return probing.integration("shop-db", "postgres", {**values, **settings})


async def test_postgres_probe_reports_version_database_and_user(
    postgres: servers.Postgres,
) -> None:
    health = await check(pg(postgres), {"password": postgres.password})
    assert (health.ready, health.reason) == (True, "ProbeSucceeded"), health
    assert health.message.startswith("integration 'shop-db': PostgreSQL 1")
    expected = f"at {postgres.host}:{postgres.port}/{postgres.dbname}, "
    assert expected + f"database {postgres.dbname} as {postgres.user}" in health.message


async def test_postgres_probe_with_a_dsn(postgres: servers.Postgres) -> None:
    health = await check(pg(), {"dsn": postgres.dsn})
    assert health.reason == "ProbeSucceeded", health
    assert postgres.password not in health.message


async def test_postgres_wrong_password_is_rejected_credentials(postgres: servers.Postgres) -> None:
    health = await check(pg(postgres), {"password": WRONG})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert "password authentication failed" in health.message
    assert WRONG not in health.message


async def test_postgres_without_the_password_it_needs_is_rejected_credentials(
    postgres: servers.Postgres,
) -> None:
    """With settings.host the password is optional (trust, peer, certificates): the server
    says whether it wanted one."""
    health = await check(pg(postgres))
    assert health.reason == "CredentialsRejected"
    assert "no password supplied" in health.message


async def test_postgres_without_host_or_dsn_is_secret_missing() -> None:
    health = await check(pg(database="shop"))
    assert (health.ready, health.reason) == (False, "SecretMissing")
    assert "has no secret 'dsn': set AUTOFLOW_SECRET_SHOP_DB_DSN" in health.message


async def test_postgres_closed_port_is_unreachable() -> None:
    health = await check(pg(host="127.0.0.1", port=closed_port(), user="x"), {"password": "pw12"})
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert "Connection refused" in health.message


async def test_postgres_stopped_server_is_unreachable_then_ready_again(
    postgres_factory: Callable[..., servers.Postgres],
) -> None:
    server = postgres_factory()
    server.stop()
    down = await check(pg(server), {"password": server.password})
    assert down.reason == "Unreachable"
    server.start_again()
    assert (await check(pg(server), {"password": server.password})).ready


async def test_postgres_silent_server_times_out(silent_port: int) -> None:
    await times_out(pg(host="127.0.0.1", port=silent_port, user="x"), {"password": "pw12"})


async def test_postgres_unusable_settings_are_invalid_settings() -> None:
    health = await check(pg(host="127.0.0.1", port=70000))
    assert (health.ready, health.reason) == (False, "InvalidSettings")
    assert "Integration/shop-db, field 'settings.port'" in health.message


# -- Redis --------------------------------------------------------------------------------------


def cache(server: servers.Redis | None = None, **settings: Any) -> integration.Integration:
    values = {"host": server.host, "port": server.port} if server else {}
    return probing.integration("cache", "redis", {**values, **settings})


async def test_redis_probe_pings_and_reports_the_version(redis_server: servers.Redis) -> None:
    health = await check(cache(redis_server), {"password": redis_server.password})
    assert (health.ready, health.reason) == (True, "ProbeSucceeded"), health
    assert health.message.startswith("integration 'cache': Redis ")
    assert health.message.endswith(f" at {redis_server.host}:{redis_server.port}/0 answered PING")


async def test_redis_probe_with_a_url(redis_server: servers.Redis) -> None:
    health = await check(cache(), {"url": redis_server.url})
    assert health.reason == "ProbeSucceeded", health
    assert redis_server.password not in health.message


async def test_redis_wrong_password_is_rejected_credentials(redis_server: servers.Redis) -> None:
    health = await check(cache(redis_server), {"password": WRONG})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert "refused the login" in health.message
    assert WRONG not in health.message


async def test_redis_without_a_password_is_rejected_credentials(
    redis_server: servers.Redis,
) -> None:
    health = await check(cache(redis_server))
    assert health.reason == "CredentialsRejected"
    assert "(the integration gives no password)" in health.message


async def test_redis_without_host_or_url_is_secret_missing() -> None:
    health = await check(cache())
    assert (health.ready, health.reason) == (False, "SecretMissing")
    assert "AUTOFLOW_SECRET_CACHE_URL" in health.message


async def test_redis_closed_port_is_unreachable() -> None:
    health = await check(cache(host="127.0.0.1", port=closed_port()))
    assert (health.ready, health.reason) == (False, "Unreachable")


async def test_redis_silent_server_times_out(silent_port: int) -> None:
    await times_out(cache(host="127.0.0.1", port=silent_port), {"password": "pw12"})


# -- NATS ---------------------------------------------------------------------------------------


def bus(*urls: str) -> integration.Integration:
    return probing.integration("bus", "nats", {"servers": list(urls)})


async def test_nats_probe_reports_the_server_version(nats_server: servers.Nats) -> None:
    health = await check(bus(nats_server.url))
    assert (health.ready, health.reason) == (True, "ProbeSucceeded"), health
    assert health.message.startswith("integration 'bus': NATS 2.")
    assert health.message.endswith(f" at {nats_server.url} answered PING")


async def test_nats_wrong_password_is_rejected_credentials(
    nats_factory: Callable[..., servers.Nats],
) -> None:
    secured = nats_factory("--user", "alice", "--pass", "alice-pw-77e1")
    ok = await check(bus(secured.url), {"user": "alice", "password": "alice-pw-77e1"})
    assert ok.reason == "ProbeSucceeded", ok
    health = await check(bus(secured.url), {"user": "alice", "password": WRONG})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert "refused the credentials" in health.message
    assert WRONG not in health.message


async def test_nats_closed_port_is_unreachable() -> None:
    health = await check(bus(f"nats://127.0.0.1:{closed_port()}"))
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert "no server could be reached" in health.message


async def test_nats_silent_server_times_out(silent_port: int) -> None:
    await times_out(bus(f"nats://127.0.0.1:{silent_port}"))


async def test_nats_password_without_user_is_invalid_settings(nats_server: servers.Nats) -> None:
    health = await check(bus(nats_server.url), {"password": "pw-without-user"})
    assert (health.ready, health.reason) == (False, "InvalidSettings")
    assert "has a password but no user" in health.message


# -- SMTP ---------------------------------------------------------------------------------------


def mail(server: servers.SmtpServer | None = None, **settings: Any) -> integration.Integration:
    values: dict[str, Any] = {}
    if server is not None:
        values = {"host": server.host, "port": server.port, "username": server.username}
        if server.certificate is not None:
            values["tlsCaCert"] = server.certificate.cert_file.read_text()
    return probing.integration("mail", "email", {**values, **settings})


async def test_smtp_probe_logs_in_over_starttls_and_sends_nothing(
    smtp_server: servers.SmtpServer,
) -> None:
    assert smtp_server.password is not None
    health = await check(mail(smtp_server), {"password": smtp_server.password})
    assert (health.ready, health.reason) == (True, "ProbeSucceeded"), health
    assert health.message == (
        f"integration 'mail': SMTP server {smtp_server.host}:{smtp_server.port} (localhost) "
        f"answered EHLO over TLS, logged in as {smtp_server.username}"
    )
    assert smtp_server.messages == []
    assert smtp_server.auth_failures == 0


async def test_smtp_probe_over_ssl_without_auth(
    smtp_factory: Callable[..., servers.SmtpServer],
) -> None:
    server = smtp_factory(tls="ssl")
    health = await check(mail(server, security="ssl"))
    assert health.reason == "ProbeSucceeded", health
    assert "over TLS" in health.message and "logged in" not in health.message


async def test_smtp_wrong_password_is_rejected_credentials(
    smtp_server: servers.SmtpServer,
) -> None:
    health = await check(mail(smtp_server), {"password": WRONG})
    assert (health.ready, health.reason) == (False, "CredentialsRejected")
    assert "refused the username or password: 535" in health.message
    assert WRONG not in health.message
    assert smtp_server.auth_failures == 1  # one attempt, not one per mechanism


async def test_smtp_without_starttls_is_probe_failed_naming_the_setting(
    smtp_factory: Callable[..., servers.SmtpServer],
) -> None:
    server = smtp_factory(tls="none")
    health = await check(mail(server))
    assert (health.ready, health.reason) == (False, "ProbeFailed")
    assert "does not offer STARTTLS; set security: ssl or none" in health.message


async def test_smtp_closed_port_is_unreachable() -> None:
    health = await check(mail(host="127.0.0.1", port=closed_port(), security="none"))
    assert (health.ready, health.reason) == (False, "Unreachable")
    assert "could not connect" in health.message


def test_smtp_silent_server_times_out_without_holding_the_process(silent_port: int) -> None:
    """smtplib blocks a worker thread that a timeout cannot stop, and ``asyncio.run`` (as the
    CLI runs) waits for every worker thread before it returns: the probe's deadline bounds
    the thread's socket waits, so that is soon after the timeout, not settings.timeout (30s)
    later."""
    started = time.monotonic()
    health = asyncio.run(
        check(mail(host="127.0.0.1", port=silent_port, security="none"), None, 0.5)
    )
    assert health.reason == "Timeout"
    assert time.monotonic() - started < 2.5


# -- the command --------------------------------------------------------------------------------


def test_autoflow_integrations_test_on_every_service(
    autoflow_cli: Cli,
    tmp_path: Path,
    postgres: servers.Postgres,
    redis_server: servers.Redis,
    nats_server: servers.Nats,
    smtp_server: servers.SmtpServer,
) -> None:
    intgs = [
        pg(postgres),
        cache(redis_server),
        bus(nats_server.url),
        mail(smtp_server),
        probing.integration("gone", "postgres", {"host": "127.0.0.1", "port": closed_port()}),
    ]
    file = tmp_path / "integrations.yaml"
    file.write_text(yaml.safe_dump_all([i.model_dump(mode="json", by_alias=True) for i in intgs]))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        yaml.safe_dump(
            {
                "shop-db": {"password": postgres.password},
                "mail": {"password": smtp_server.password},
            }
        )
    )
    result = autoflow_cli(
        "integrations",
        "test",
        str(file),
        "--secrets",
        str(secrets),
        "-o",
        "json",
        env={"AUTOFLOW_SECRET_CACHE_PASSWORD": redis_server.password},
    )
    assert result.returncode == 1, result.stderr  # "gone" is not ready
    assert result.stderr == ""
    verdicts = {r["name"]: (r["ready"], r["reason"]) for r in yaml.safe_load(result.stdout)}
    assert verdicts == {
        "shop-db": (True, "ProbeSucceeded"),
        "cache": (True, "ProbeSucceeded"),
        "bus": (True, "ProbeSucceeded"),
        "mail": (True, "ProbeSucceeded"),
        "gone": (False, "Unreachable"),
    }
    for secret in (postgres.password, redis_server.password, str(smtp_server.password)):
        assert secret not in result.stdout
