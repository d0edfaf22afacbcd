"""Fixtures of the real-services tier: PostgreSQL, Redis, NATS and SMTP on loopback ports.

Servers come from the installed binaries (``hack/services.sh``), start once per session and
stop when it ends (``servers.py`` says how). Without a binary the tests that need it fail in
CI (``CI=true``) and are skipped elsewhere, naming ``hack/services.sh``. Every test in this
folder is marked ``services``, so ``pytest -m "not services"`` leaves the tier out.

Session-scoped, shared by all tests (use unique names or a fresh database/key prefix):

- ``postgres``: ``servers.Postgres`` (``dsn``, ``host``, ``port``, ``user``, ``password``,
  ``dbname``; the user owns the database and is no superuser)
- ``redis_server``: ``servers.Redis`` (``url`` with the password, ``host``, ``port``,
  ``password``)
- ``nats_server``: ``servers.Nats`` (``url``, ``host``, ``port``, ``store_dir``; JetStream on)
- ``smtp_server``: ``servers.SmtpServer`` offering STARTTLS and AUTH (``username``/``password``,
  only after STARTTLS, not required); ``messages`` is emptied before each test that uses it;
  ``client_context()`` trusts its self-signed certificate

Function-scoped, for a test that needs its own server (stopped with the test):

- ``postgres_db``: a fresh database on ``postgres`` (same attributes), dropped afterwards
- ``postgres_factory(**settings)``: a new PostgreSQL from the session's initdb template
- ``redis_factory(*args, tls=False)``, ``nats_factory(*args)``: new servers with extra
  command-line options (``tls=True``: Redis also listens with TLS on ``tls_port``)
- ``smtp_factory(tls=..., auth=..., auth_required=..., require_tls=...)``
- ``tls_certificate`` (session): the self-signed ``servers.Certificate`` those servers use

A server object's ``stop()`` and ``start_again()`` take it down and bring it back on the same
port (PostgreSQL and NATS keep their data), for outage tests.

Running connector actions (function-scoped):

- ``call_action(uses, with_, integration=None, step="step")``: the action as the engine calls
  it (``with_`` validated into its params, a real ``ActionContext`` sharing one
  ``ResourcePool`` for the test, output dumped to journal JSON); ``make_integration(name,
  type, settings, secrets)`` builds the ``sdk.IntegrationInfo`` a step would see
- ``autoflow_cli(*args, env={...}, cwd=path)``: ``autoflow`` as a subprocess, with a clean
  environment (no inherited ``AUTOFLOW_*``) plus ``env``
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import servers

from autoflow.connectors import registry, sdk
from autoflow.crds import errors

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pw-4c1d"

T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.services)


def _required(start: Callable[[], T]) -> T:
    """``start()``, or skip (fail in CI) when the server is not installed here."""
    try:
        return start()
    except servers.Unavailable as exc:
        if servers.is_ci():
            pytest.fail(f"CI needs the service tier's servers: {exc}", pytrace=False)
        pytest.skip(str(exc))  # the message says how to install it (hack/services.sh)


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[servers.PostgresCluster]:
    """The PostgreSQL binaries and one initdb template for every server of the session."""
    cluster = _required(servers.PostgresCluster.create)
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def postgres(postgres_cluster: servers.PostgresCluster) -> Iterator[servers.Postgres]:
    with postgres_cluster.start() as server:
        yield server


@pytest.fixture
def postgres_db(postgres: servers.Postgres) -> Iterator[servers.Postgres]:
    """A fresh, empty database on the session's server, owned by ``postgres.user``."""
    db = postgres.create_database()
    yield db
    postgres.drop_database_soon(db.dbname)


@pytest.fixture
def postgres_factory(
    postgres_cluster: servers.PostgresCluster,
) -> Iterator[Callable[..., servers.Postgres]]:
    """Starts extra PostgreSQL servers (``settings`` go to postgresql.conf); all stopped and
    removed after the test."""
    with contextlib.ExitStack() as stack:

        def start(**settings: str | int) -> servers.Postgres:
            return stack.enter_context(postgres_cluster.start(**settings))

        yield start


# -- Redis and NATS ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Redis]:
    with _required(servers.Redis.start) as server:
        yield server


@pytest.fixture
def redis_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., servers.Redis]]:
    """``redis_factory(*args, port=None, tls=False)``: a new redis-server, stopped after the
    test; with ``tls=True`` it also listens with TLS (``tls_url``, ``tls_certificate``)."""
    with contextlib.ExitStack() as stack:

        def start(*args: str, port: int | None = None, tls: bool = False) -> servers.Redis:
            cert = request.getfixturevalue("tls_certificate") if tls else None
            return stack.enter_context(
                _required(lambda: servers.Redis.start(*args, port=port, certificate=cert))
            )

        yield start


@pytest.fixture(scope="session")
def nats_server() -> Iterator[servers.Nats]:
    with _required(servers.Nats.start) as server:
        yield server


@pytest.fixture
def nats_factory() -> Iterator[Callable[..., servers.Nats]]:
    """``nats_factory(*args, port=None)``: a new nats-server, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(*args: str, port: int | None = None) -> servers.Nats:
            return stack.enter_context(_required(lambda: servers.Nats.start(*args, port=port)))

        yield start


# -- SMTP -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> servers.Certificate:
    """One self-signed certificate (localhost, 127.0.0.1) for every TLS server here."""
    return _required(lambda: servers.Certificate.create(tmp_path_factory.mktemp("smtp-tls")))


@pytest.fixture(scope="session")
def smtp_server(tls_certificate: servers.Certificate) -> Iterator[servers.SmtpServer]:
    """STARTTLS offered, AUTH available (after STARTTLS, not required); emptied before each
    test that uses it."""
    start = servers.SmtpServer.start
    kwargs: dict[str, Any] = {"certificate": tls_certificate}
    with _required(lambda: start(auth=(SMTP_USER, SMTP_PASSWORD), **kwargs)) as server:
        yield server


@pytest.fixture(autouse=True)
def _empty_smtp_server(request: pytest.FixtureRequest) -> None:
    if "smtp_server" in request.fixturenames:
        request.getfixturevalue("smtp_server").clear()


@pytest.fixture
def smtp_factory(
    tls_certificate: servers.Certificate,
) -> Iterator[Callable[..., servers.SmtpServer]]:
    """``smtp_factory(tls="starttls"|"ssl"|"none", auth=(user, pw)|None, auth_required=False,
    require_tls=False)``: a new SMTP server with the session certificate, stopped after."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> servers.SmtpServer:
            kwargs.setdefault("certificate", tls_certificate)
            return stack.enter_context(_required(lambda: servers.SmtpServer.start(**kwargs)))

        yield start


# -- running actions --------------------------------------------------------------------------


class DictSecrets:
    """An integration's secrets from a dict, failing on a missing key as the runners do."""

    def __init__(self, name: str, values: Mapping[str, str]) -> None:
        self.name = name
        self.values = dict(values)

    def get(self, key: str) -> str:
        if key not in self.values:
            raise errors.PermanentError(f"integration {self.name!r} has no secret {key!r}")
        return self.values[key]


def _make_integration(
    name: str, type: str, settings: Mapping[str, Any], secrets: Mapping[str, str] | None = None
) -> sdk.IntegrationInfo:
    return sdk.IntegrationInfo(name, type, dict(settings), DictSecrets(name, secrets or {}))


@pytest.fixture
def make_integration() -> Callable[..., sdk.IntegrationInfo]:
    """``make_integration(name, type, settings, secrets=None)`` → ``sdk.IntegrationInfo``."""
    return _make_integration


CallAction = Callable[..., Awaitable[Any]]


@pytest.fixture
async def call_action() -> AsyncIterator[CallAction]:
    """Runs an action as one step of a run; the run's pooled resources close afterwards."""
    actions = registry.Registry(entry_points=False)
    pool = sdk.ResourcePool()
    attempts: dict[str, int] = {}

    async def call(
        uses: str,
        with_: dict[str, Any],
        integration: sdk.IntegrationInfo | None = None,
        step: str = "step",
    ) -> Any:
        action = actions.action(uses)
        attempts[step] = attempts.get(step, 0) + 1
        ctx = sdk.ActionContext(
            run_id="run-1",
            step_id=step,
            attempt=attempts[step],
            idempotency_key=f"run-1:{step}",
            log=logging.LoggerAdapter(logging.getLogger(f"test.{uses}"), {"run_id": "run-1"}),
            integration=integration,
            pool=pool,
        )
        params = action.params.model_validate(with_)
        return action.dump_output(await action.func(params, ctx))

    yield call
    await pool.aclose()


@pytest.fixture
def autoflow_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``autoflow_cli(*args, env=None, cwd=REPO, timeout=120)``: the CLI as a user runs it."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
        return subprocess.run(
            [sys.executable, "-P", "-m", "autoflow.cli.main", *args],
            cwd=cwd,
            env={**clean, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
