"""Real PostgreSQL, Redis, NATS and SMTP servers on loopback ports, for the service test tier.

Each server runs from the locally installed binaries (``hack/services.sh`` installs the Debian
packages) in its own temporary directory, on a free 127.0.0.1 port, and is stopped and its
directory removed when closed. A process started here is killed with the test run even when
pytest itself is killed (``PR_SET_PDEATHSIG``), so no server outlives the session::

    cluster = servers.PostgresCluster.create()    # initdb once: a template data directory
    with cluster.start() as pg:                   # a copy of the template, started
        psycopg.connect(pg.dsn)                   # user/password/dbname of a non-superuser
    with servers.Redis.start() as r: r.url        # requirepass on; the url carries it
    with servers.Nats.start() as n: n.url         # JetStream on, store in the temp dir
    with servers.SmtpServer.start(tls="starttls", auth=("mailer", "pw")) as s: s.messages

``stop()`` then ``start_again()`` takes a server down and brings it back on the same port, for
outage tests. ``Certificate`` is a self-signed localhost certificate (openssl) for the servers
that speak TLS (SMTP, and Redis when started with one).

PostgreSQL refuses to run as root: as root, its processes run as the ``postgres`` user (from
the Debian package), or ``nobody`` when there is none, and its directories belong to that user.

``Unavailable`` means a binary is not installed (the fixtures skip, or fail in CI);
``StartError`` means it is installed but did not come up (its log tail is in the message).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import email.message
import email.policy
import functools
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from email import parser as email_parser
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, cast

if TYPE_CHECKING:
    import redis as redis_py

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = "install them with `hack/services.sh` (Debian packages)"


class Unavailable(RuntimeError):
    """A server binary is not installed here."""


class StartError(RuntimeError):
    """A server is installed but did not come up; the message ends with its log tail."""


def is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, extra_dirs: Sequence[str] = ("/usr/sbin", "/usr/local/sbin")) -> Path:
    """``name`` on PATH or in ``extra_dirs`` (Debian puts nats-server in /usr/sbin)."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if os.access(Path(d) / name, os.X_OK)), None
    )
    if found is None:
        raise Unavailable(f"{name} is not installed; {INSTALL_HINT}")
    return Path(found)


def find_postgres_bindir() -> Path:
    """Where initdb and postgres are: ``$AUTOFLOW_PG_BINDIR``, the newest Debian
    ``/usr/lib/postgresql/<major>/bin``, else PATH (so a fresh machine behaves the same as one
    with another PostgreSQL in /usr/local/bin)."""
    wanted = ("initdb", "postgres")
    candidates = [os.environ.get("AUTOFLOW_PG_BINDIR", "")]
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(debian, key=lambda d: _version_key(Path(d).parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for directory in filter(None, candidates):
        if all(os.access(Path(directory) / b, os.X_OK) for b in wanted):
            return Path(directory)
    raise Unavailable(f"PostgreSQL (initdb, postgres) is not installed; {INSTALL_HINT}")


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _die_with_parent() -> None:
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


def _clean_env(**extra: str) -> dict[str, str]:
    # libpq and friends read PG* variables; a developer's shell must not change the servers.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS", "NATS"))}
    env.update(LC_ALL="C", LANG="C", **extra)
    return env


@dataclasses.dataclass(frozen=True)
class RunAs:
    """The account a server runs as: the current one, or (as root) an unprivileged one."""

    user: str | None = None
    uid: int = -1
    gid: int = -1

    @classmethod
    def unprivileged(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls()
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(name, entry.pw_uid, entry.pw_gid)
        raise Unavailable("running as root and there is no 'postgres' or 'nobody' user")

    def own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.uid, self.gid)

    def popen_args(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


class Process:
    """One server process: started with its output in ``<dir>/<name>.log``, stopped gently,
    and startable again with the same command line (same port, same data)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        *,
        run_as: RunAs | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.run_as = run_as or RunAs()
        self.env = env or _clean_env()
        self.log_path = workdir / f"{name}.log"
        self.proc = self._spawn("wb")

    def _spawn(self, mode: Literal["wb", "ab"]) -> subprocess.Popen[bytes]:
        with self.log_path.open(mode) as log:
            self.run_as.own(self.log_path)
            return subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                preexec_fn=_die_with_parent,  # a killed test run leaves no servers behind
                **self.run_as.popen_args(),
            )

    def start_again(self) -> None:
        """After ``stop``: the same command again (the log goes on in the same file)."""
        if self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is still running")
        self.proc = self._spawn("ab")

    def wait_ready(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if self.proc.poll() is not None:
                raise StartError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise StartError(f"{self.name} not ready after {timeout:g}s:\n{self.log_tail()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _tcp_exchange(port: int, send: bytes, expect: bytes, timeout: float = 1.0) -> bool:
    """Whether a loopback server on ``port`` answers ``send`` with something holding ``expect``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if send:
                sock.sendall(send)
            received = b""
            while expect not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                received += chunk
            return True
    except OSError:
        return False


class _Managed:
    """Context-manager plumbing: ``close`` stops the server and removes its directory."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


# -- PostgreSQL -------------------------------------------------------------------------------

SUPERUSER = "postgres"
TEST_USER = "autoflow"
TEST_DB = "autoflow"


class PostgresCluster:
    """The binaries plus one ``initdb``-made template; each ``start`` copies the template
    (tens of milliseconds) instead of running initdb again (about a second)."""

    def __init__(self, bindir: Path, root: Path, run_as: RunAs, superuser_password: str) -> None:
        self.bindir = bindir
        self.root = root
        self.run_as = run_as
        self.superuser_password = superuser_password
        self.template = root / "template"
        self._count = 0

    @classmethod
    def create(cls) -> PostgresCluster:
        bindir = find_postgres_bindir()
        run_as = RunAs.unprivileged()
        root = Path(tempfile.mkdtemp(prefix="autoflow-pg-"))
        run_as.own(root)
        cluster = cls(bindir, root, run_as, secrets.token_hex(12))
        try:
            cluster._initdb()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _initdb(self) -> None:
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(self.superuser_password + "\n")
        self.run_as.own(pwfile)
        argv = [
            str(self.bindir / "initdb"),
            f"--pgdata={self.template}",
            f"--username={SUPERUSER}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        with self.run_as_process("initdb", argv) as initdb:
            code = initdb.proc.wait(120)
            if code != 0:
                raise StartError(f"initdb exited with code {code}:\n{initdb.log_tail()}")
        pwfile.unlink()

    @contextlib.contextmanager
    def run_as_process(self, name: str, argv: Sequence[str]) -> Iterator[Process]:
        process = Process(name, argv, self.root, run_as=self.run_as)
        try:
            yield process
        finally:
            process.stop()

    def start(self, **settings: str | int) -> Postgres:
        """A new server from the template; ``settings`` are postgresql.conf settings."""
        self._count += 1
        datadir = self.root / f"data-{self._count}"
        subprocess.run(
            ["cp", "-a", str(self.template), str(datadir)],
            check=True,
            **self.run_as.popen_args(),
        )
        last: StartError | None = None
        for _ in range(3):  # the free port may be taken between choosing and binding it
            try:
                return Postgres.launch(self, datadir, free_port(), settings)
            except StartError as exc:
                last = exc
        assert last is not None
        raise last

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclasses.dataclass
class Postgres(_Managed):
    """A running PostgreSQL: ``user``/``password`` own database ``dbname`` (not a superuser)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    superuser_password: str
    datadir: Path
    process: Process | None = dataclasses.field(default=None, repr=False)
    _drops: list[threading.Thread] = dataclasses.field(default_factory=list, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    @property
    def superuser_dsn(self) -> str:
        return (
            f"postgresql://{SUPERUSER}:{self.superuser_password}@{self.host}:{self.port}/"
            f"{self.dbname}"
        )

    @classmethod
    def launch(
        cls,
        cluster: PostgresCluster,
        datadir: Path,
        port: int,
        settings: dict[str, str | int],
    ) -> Postgres:
        conf: dict[str, str | int] = {
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": "",
            # Durability buys nothing in a throwaway test server; speed does.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
            # A client stopped half-way through logging in (a test's event loop ended) holds
            # its server process, and DROP DATABASE, no longer than this.
            "authentication_timeout": "5s",
            **settings,
        }
        argv = [str(cluster.bindir / "postgres"), "-D", str(datadir)]
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in conf.items()]
        process = Process(f"postgres-{port}", argv, cluster.root, run_as=cluster.run_as)
        pg = cls(
            host="127.0.0.1",
            port=port,
            user=TEST_USER,
            password=secrets.token_hex(12),
            dbname=TEST_DB,
            superuser_password=cluster.superuser_password,
            datadir=datadir,
            process=process,
        )
        try:
            process.wait_ready(pg._accepts_connections)
            pg._create_test_user()
        except BaseException:
            pg.close()
            raise
        return pg

    def _accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self._admin_dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _admin_dsn(self, dbname: str) -> str:
        return (
            f"postgresql://{SUPERUSER}:{self.superuser_password}@{self.host}:{self.port}/{dbname}"
        )

    def _create_test_user(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.user)
                )
            )

    def create_database(self, name: str | None = None) -> Postgres:
        """A fresh empty database owned by ``user`` on this server (drop it with
        ``drop_database``); the returned object differs only in ``dbname``."""
        import psycopg
        from psycopg import sql

        name = name or f"db_{secrets.token_hex(4)}"
        with psycopg.connect(self._admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.user)
                )
            )
        return dataclasses.replace(self, dbname=name, process=None)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def drop_database_soon(self, name: str) -> None:
        """``drop_database`` in the background: a test's connection pool may still be open
        (async fixtures are often torn down after this one), and a connection caught half-way
        through logging in holds DROP ... WITH (FORCE) until authentication_timeout."""

        def drop() -> None:
            with contextlib.suppress(Exception):
                self.drop_database(name)

        thread = threading.Thread(target=drop, name=f"drop {name}", daemon=True)
        thread.start()
        self._drops.append(thread)

    def stop(self) -> None:
        """Stop the server (fast shutdown), keeping its data and port for ``start_again``;
        ``close`` also removes the data."""
        if self.process is not None:
            self.process.stop(signal.SIGINT)

    def start_again(self) -> None:
        """Start a stopped server again, on the same port with the same data."""
        assert self.process is not None, "not the object that started the server"
        self.process.start_again()
        self.process.wait_ready(self._accepts_connections)

    def close(self) -> None:
        for thread in self._drops:
            thread.join(timeout=5)
        self.stop()
        if self.process is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)


# -- Redis ------------------------------------------------------------------------------------

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def stream_entries(client: redis_py.Redis, stream: str) -> StreamEntries:
    """XRANGE of a whole stream. redis-py types ids and fields as bytes or str and the reply as
    optional; a client without decode_responses gets bytes, and a list for any stream."""
    return cast(StreamEntries, client.xrange(stream))


@dataclasses.dataclass
class Redis(_Managed):
    """A running redis-server with ``requirepass``; ``url`` carries the password. Started
    with a ``certificate``, it also speaks TLS on ``tls_port`` (``tls_url``), clients
    unauthenticated by certificate."""

    host: str
    port: int
    password: str
    workdir: Path
    process: Process | None = dataclasses.field(default=None, repr=False)
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    @property
    def tls_url(self) -> str:
        assert self.tls_port is not None, "started without a certificate"
        return f"rediss://:{self.password}@{self.host}:{self.tls_port}/0"

    @classmethod
    def start(
        cls, *extra_args: str, port: int | None = None, certificate: Certificate | None = None
    ) -> Redis:
        """``extra_args`` are redis-server options (``--maxmemory``, ``1mb``, ...)."""
        binary = find_binary("redis-server")
        workdir = Path(tempfile.mkdtemp(prefix="autoflow-redis-"))
        password = secrets.token_hex(12)
        last: StartError | None = None
        for _ in range(1 if port else 3):
            chosen = port or free_port()
            tls: list[str] = []
            tls_port = None
            if certificate is not None:
                tls_port = free_port()
                tls = [
                    "--tls-port", str(tls_port),
                    "--tls-cert-file", str(certificate.cert_file),
                    "--tls-key-file", str(certificate.key_file),
                    "--tls-auth-clients", "no",
                ]  # fmt: skip
            argv = [
                str(binary),
                "--bind", "127.0.0.1",
                "--port", str(chosen),
                "--requirepass", password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
                "--daemonize", "no",
                "--loglevel", "warning",
                *tls,
                *extra_args,
            ]  # fmt: skip
            process = Process(f"redis-{chosen}", argv, workdir)
            server = cls("127.0.0.1", chosen, password, workdir, process, tls_port)
            ping = f"AUTH {password}\r\nPING\r\n".encode()
            try:
                process.wait_ready(functools.partial(_tcp_exchange, chosen, ping, b"+PONG"))
                return server
            except StartError as exc:
                process.stop()
                last = exc
        shutil.rmtree(workdir, ignore_errors=True)
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop the server, keeping its port (and password) for ``start_again``."""
        if self.process is not None:
            self.process.stop()

    def start_again(self) -> None:
        """Start a stopped server again on the same port; it starts empty (no persistence)."""
        assert self.process is not None
        self.process.start_again()
        ping = f"AUTH {self.password}\r\nPING\r\n".encode()
        self.process.wait_ready(lambda: _tcp_exchange(self.port, ping, b"+PONG"))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- NATS -------------------------------------------------------------------------------------


_JETSTREAM_ON = b'"jetstream":true'  # in the INFO line a NATS server greets a client with


@dataclasses.dataclass
class Nats(_Managed):
    """A running nats-server with JetStream (file store in ``store_dir``), no auth."""

    host: str
    port: int
    store_dir: Path
    workdir: Path
    process: Process | None = dataclasses.field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @classmethod
    def start(cls, *extra_args: str, port: int | None = None) -> Nats:
        """``extra_args`` are nats-server options (``--user``, ``u``, ``--pass``, ``p``, ...)."""
        binary = find_binary("nats-server")
        workdir = Path(tempfile.mkdtemp(prefix="autoflow-nats-"))
        store = workdir / "jetstream"
        last: StartError | None = None
        for _ in range(1 if port else 3):
            chosen = port or free_port()
            argv = [
                str(binary),
                "--addr", "127.0.0.1",
                "--port", str(chosen),
                "--jetstream",
                "--store_dir", str(store),
                *extra_args,
            ]  # fmt: skip
            process = Process(f"nats-{chosen}", argv, workdir)
            server = cls("127.0.0.1", chosen, store, workdir, process)
            try:
                process.wait_ready(functools.partial(_tcp_exchange, chosen, b"", _JETSTREAM_ON))
                return server
            except StartError as exc:
                process.stop()
                last = exc
        shutil.rmtree(workdir, ignore_errors=True)
        assert last is not None
        raise last

    def stop(self) -> None:
        """Stop the server, keeping its port and JetStream store for ``start_again``."""
        if self.process is not None:
            self.process.stop()

    def start_again(self) -> None:
        """Start a stopped server again on the same port, with the streams it had stored."""
        assert self.process is not None
        self.process.start_again()
        self.process.wait_ready(functools.partial(_tcp_exchange, self.port, b"", _JETSTREAM_ON))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- SMTP -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (made by openssl)."""

    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> Certificate:
        openssl = find_binary("openssl")
        cert, key = directory / "cert.pem", directory / "key.pem"
        argv = [
            str(openssl), "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise StartError(f"openssl could not make a certificate:\n{result.stderr}")
        return cls(cert, key)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and verifies the host name)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One accepted message: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    authenticated_as: str | None
    tls: bool


class _Recorder:
    """aiosmtpd handler: parses and keeps every message it accepts."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.server.lock:
            reply = self.server.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        parsed = email_parser.BytesParser(policy=email.policy.default).parsebytes(
            envelope.original_content or envelope.content
        )
        assert isinstance(parsed, email.message.EmailMessage)
        user = session.auth_data if session.authenticated else None
        with self.server.lock:
            self.server.envelopes.append(
                Envelope(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    parsed,
                    user,
                    # aiosmtpd sets session.ssl after STARTTLS only; "ssl" is TLS throughout.
                    bool(session.ssl) or self.server.tls == "ssl",
                )
            )
        return "250 OK: queued"


TlsMode = Literal["none", "starttls", "ssl"]


class SmtpServer(_Managed):
    """aiosmtpd on a free loopback port, recording what it accepts.

    ``tls``: ``"starttls"`` offers STARTTLS (``require_tls`` makes MAIL wait for it), ``"ssl"``
    speaks TLS from the first byte (SMTPS). ``auth=(user, password)`` enables AUTH PLAIN/LOGIN
    (only after TLS when TLS is on); ``auth_required`` refuses mail without it.
    ``messages`` are ``email.message.EmailMessage`` objects (``policy.default``); ``envelopes``
    add the envelope sender and recipients (Bcc is only there) and whether it was sent over TLS.
    ``rcpt_replies`` maps a recipient address to the reply its RCPT gets instead of ``250 OK``
    (a refusal, or a server that echoes something back).
    """

    def __init__(
        self,
        workdir: Path,
        certificate: Certificate | None,
        tls: TlsMode,
        auth: tuple[str, str] | None,
        auth_required: bool,
        require_tls: bool,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir = workdir
        self.certificate = certificate
        self.tls = tls
        self.username: str | None = auth[0] if auth else None
        self.password: str | None = auth[1] if auth else None
        self.envelopes: list[Envelope] = []
        self.rcpt_replies: dict[str, str] = {}
        self.lock = threading.Lock()
        self.auth_failures = 0
        self._auth_required = auth_required
        self._require_tls = require_tls
        self._controller: Any = None

    @classmethod
    def start(
        cls,
        *,
        tls: TlsMode = "starttls",
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        require_tls: bool = False,
        certificate: Certificate | None = None,
    ) -> SmtpServer:
        try:
            from aiosmtpd import controller  # noqa: F401
        except ImportError as exc:
            raise Unavailable(
                f"aiosmtpd is not installed ({exc}); pip install -e '.[test]'"
            ) from None
        workdir = Path(tempfile.mkdtemp(prefix="autoflow-smtp-"))
        if tls != "none" and certificate is None:
            certificate = Certificate.create(workdir)
        server = cls(workdir, certificate, tls, auth, auth_required, require_tls)
        try:
            server._start()
        except BaseException:
            server.close()
            raise
        return server

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self.lock:
            return [e.message for e in self.envelopes]

    def clear(self) -> None:
        with self.lock:
            self.envelopes.clear()
            self.rcpt_replies.clear()
            self.auth_failures = 0

    def client_context(self) -> ssl.SSLContext:
        assert self.certificate is not None, "this server speaks no TLS"
        return self.certificate.client_context()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd import smtp

        ok = (
            isinstance(data, smtp.LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        if not ok:
            with self.lock:
                self.auth_failures += 1
        if not ok:
            # handled=False: aiosmtpd answers 535 itself.
            return smtp.AuthResult(success=False, handled=False)
        return smtp.AuthResult(success=True, auth_data=self.username)

    def _start(self) -> None:
        from aiosmtpd import controller

        context = self.certificate.server_context() if self.certificate else None
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=self._auth_required,
                # aiosmtpd knows only STARTTLS as TLS: with "ssl" it would never offer AUTH.
                auth_require_tls=self.tls == "starttls",
            )
        if self.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=self._require_tls)
        elif self.tls == "ssl":
            kwargs.update(ssl_context=context)
            # Said for every connection, though "ssl" is TLS from the first byte.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        last: Exception | None = None
        for _ in range(3):
            port = free_port()
            ctl = controller.Controller(
                _Recorder(self),
                hostname="127.0.0.1",
                port=port,
                server_hostname="localhost",
                ready_timeout=START_TIMEOUT,
                **kwargs,
            )
            try:
                ctl.start()
            except Exception as exc:  # the port was taken meanwhile: try another
                last = exc
                continue
            self._controller, self.port = ctl, port
            return
        raise StartError(f"aiosmtpd did not start: {last}")

    def close(self) -> None:
        if self._controller is not None:
            with contextlib.suppress(Exception):
                self._controller.stop()
            self._controller = None
        shutil.rmtree(self.workdir, ignore_errors=True)
