"""A private PgBouncer in ``pool_mode = transaction`` for a test session (Supabase's pooler).

``start_pgbouncer(workdir)`` writes ``pgbouncer.ini`` and ``userlist.txt`` into ``workdir``,
starts PgBouncer on a free port of 127.0.0.1 in front of the test PostgreSQL and returns
once it serves queries::

    with start_pgbouncer(tmp_path) as bouncer:
        psycopg.connect(bouncer.dsn, prepare_threshold=None)

What transaction pooling means for clients (checked against PgBouncer 1.18, Debian 12):

- A client holds a server connection only for one transaction (in autocommit mode: one
  statement), so anything that lives in the *session* is unsafe: server-side prepared
  statements (psycopg must run with ``prepare_threshold=None``), ``SET`` (it leaks to
  whichever client gets that server connection next), session advisory locks
  (``pg_advisory_lock``: the unlock may run on another server connection, the lock stays
  held forever and another client on the locking connection re-acquires it at once),
  ``LISTEN``, temporary tables, ``WITH HOLD`` cursors. Transaction-scoped state is fine:
  ``SET LOCAL``, ``pg_advisory_xact_lock``.
- Startup parameters: PgBouncer 1.18 only accepts the ones it tracks (``client_encoding``,
  ``datestyle``, ``timezone``, ``standard_conforming_strings``, ``application_name``) and
  refuses the connection on any other (``unsupported startup parameter: options``) unless
  it is listed in ``ignore_startup_parameters``, in which case it is dropped *silently*.
  psycopg sends ``options`` when given ``options="-c search_path=..."``; ignoring it makes
  such a client run in the default search_path (``public``). Hence ``options`` is not
  ignored by default; ``search_path=`` gives the pool's server connections a search_path
  of their own (``connect_query``), and then ignoring ``options`` is safe for clients that
  asked for that same path.

Under root PgBouncer refuses to run; it is started with ``-u <user>`` (``postgres``), which
reads the ini and auth file as root and drops privileges before opening anything else, so
its log goes to stderr (captured into ``workdir/pgbouncer.log`` by this process) and the
pidfile ``workdir/pgbouncer.pid`` is written here: pytest's temporary directories are
``0700`` and the unprivileged user could not create files there.

A stopped-or-not PgBouncer never outlives the Python process: ``stop()`` (also on
``__exit__`` and at interpreter exit) ends it, and a watchdog process kills it when this
process dies without cleaning up (SIGKILL, ``os._exit`` of a pytest-timeout).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psycopg

SEARCH_DIRS = ("/usr/sbin", "/usr/bin")
# What no well-behaved client needs tracked; psycopg itself sends none of these.
DEFAULT_IGNORED_STARTUP_PARAMETERS = ("extra_float_digits",)
UNPRIVILEGED_USERS = ("postgres", "nobody")

# Reads its stdin until EOF (the parent died or stop() closed the pipe), then ends PgBouncer.
_WATCHDOG = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "pid = int(sys.argv[1])\n"
    "sys.stdin.buffer.read()\n"
    "for sig in (signal.SIGTERM, signal.SIGKILL):\n"
    "    try:\n"
    "        os.kill(pid, sig)\n"
    "    except ProcessLookupError:\n"
    "        break\n"
    "    time.sleep(2)\n"
)


def find_pgbouncer() -> str | None:
    """Path of the ``pgbouncer`` binary: on PATH, else in /usr/sbin or /usr/bin."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for folder in SEARCH_DIRS:
        candidate = Path(folder) / "pgbouncer"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged user PgBouncer runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"PgBouncer refuses root and none of {UNPRIVILEGED_USERS} exists")


def _quote(value: str) -> str:
    """A value of a [databases] connection string, single-quoted (no quotes inside)."""
    if "'" in value or "\\" in value:
        raise ValueError(f"cannot quote {value!r} for pgbouncer.ini")
    return f"'{value}'"


class PgBouncer:
    """One running PgBouncer process; ``dsn`` reaches ``dbname`` through it."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        watchdog: subprocess.Popen[bytes],
        log: IO[bytes],
        workdir: Path,
        port: int,
        dbname: str,
        user: str,
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port
        self.dbname = dbname
        self.user = user
        self._watchdog = watchdog
        self._log = log
        atexit.register(self.stop)

    @property
    def dsn(self) -> str:
        """``postgresql://USER@127.0.0.1:PORT/DBNAME``; use it with ``prepare_threshold=None``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def admin_dsn(self) -> str:
        """The admin console (``SHOW POOLS``, ``SHOW SERVERS``; autocommit, simple queries)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/pgbouncer"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def log_text(self) -> str:
        """What PgBouncer logged so far (connections, errors)."""
        return self.log_path.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate PgBouncer (SIGTERM, then SIGKILL after ``timeout``) and its watchdog.

        Idempotent; open client connections are cut.
        """
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._watchdog.poll() is None:
            self._watchdog.kill()
            self._watchdog.wait()
        if self._watchdog.stdin is not None:
            self._watchdog.stdin.close()
        if not self._log.closed:
            self._log.close()
        (self.workdir / "pgbouncer.pid").unlink(missing_ok=True)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.process.returncode}"
        return f"<PgBouncer {self.dsn} pid={self.process.pid} {state}>"


@dataclass(frozen=True)
class BouncerConfig:
    """What a test PgBouncer serves and how; one place for the options of both functions.

    ``dbname`` is served under the same name and reached as ``user`` (trust auth on both
    sides). ``pool_size`` is the number of server connections it opens at most (per
    user/database pair); ``max_client_conn`` the number of client connections it accepts.
    ``search_path``: every server connection runs ``SET search_path TO <search_path>`` first.
    """

    upstream_host: str = "127.0.0.1"
    upstream_port: int = 5432
    dbname: str = "test"
    user: str = "postgres"
    pool_size: int = 20
    max_client_conn: int = 200
    search_path: str | None = None
    ignore_startup_parameters: Sequence[str] = DEFAULT_IGNORED_STARTUP_PARAMETERS


def write_config(workdir: Path, *, port: int, config: BouncerConfig) -> Path:
    """Write ``pgbouncer.ini`` and ``userlist.txt`` into ``workdir``; return the ini's path."""
    workdir.mkdir(parents=True, exist_ok=True)
    target = f"host={config.upstream_host} port={config.upstream_port} dbname={config.dbname}"
    if config.search_path is not None:
        target += " connect_query=" + _quote(f"SET search_path TO {config.search_path}")
    ini = workdir / "pgbouncer.ini"
    userlist = workdir / "userlist.txt"
    # auth_type = trust still needs the user in auth_file; the password is not checked.
    userlist.write_text(f'"{config.user}" ""\n')
    lines = [
        "[databases]",
        f"{config.dbname} = {target}",
        "",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {userlist}",
        f"admin_users = {config.user}",
        "pool_mode = transaction",
        f"default_pool_size = {config.pool_size}",
        "min_pool_size = 0",
        "reserve_pool_size = 0",
        f"max_client_conn = {config.max_client_conn}",
        f"ignore_startup_parameters = {','.join(config.ignore_startup_parameters)}",
        # A test waiting for a server connection fails within seconds instead of hanging.
        "query_wait_timeout = 30",
        "server_connect_timeout = 5",
        "log_connections = 1",
        "log_disconnections = 1",
        "",
    ]
    ini.write_text("\n".join(lines))
    return ini


def _wait_ready(bouncer: PgBouncer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not bouncer.running:
            break
        try:
            with psycopg.connect(
                bouncer.dsn, connect_timeout=2, prepare_threshold=None, autocommit=True
            ) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.1)
    why = "timed out" if bouncer.running else f"exited with {bouncer.process.returncode}"
    bouncer.stop()
    log = bouncer.log_text()
    raise RuntimeError(f"PgBouncer did not become ready ({why}; last error: {last})\n{log}")


def start_pgbouncer(
    workdir: Path, config: BouncerConfig | None = None, *, timeout: float = 15.0, **options: Any
) -> PgBouncer:
    """Start a PgBouncer (transaction pooling) in front of the test PostgreSQL.

    ``options`` are fields of :class:`BouncerConfig` (``pool_size=2``), applied over
    ``config``. Raises ``RuntimeError`` (with PgBouncer's log) when it does not serve within
    ``timeout``.
    """
    config = replace(config or BouncerConfig(), **options)
    binary = find_pgbouncer()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (make pgbouncer)")
    workdir = Path(workdir)
    run_as = _run_as_user()
    for attempt in range(3):  # the free port may be taken before PgBouncer binds it
        port = _free_port()
        ini = write_config(workdir, port=port, config=config)
        log_path = workdir / "pgbouncer.log"
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the PgBouncer object
        command = [binary]
        if run_as is not None:
            command += ["-u", run_as.pw_name]
            for path in (ini, workdir / "userlist.txt", log_path):
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        command.append(str(ini))
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(process.pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches pytest and PgBouncer, not the watchdog
        )
        (workdir / "pgbouncer.pid").write_text(f"{process.pid}\n")
        bouncer = PgBouncer(
            process=process,
            watchdog=watchdog,
            log=log,
            workdir=workdir,
            port=port,
            dbname=config.dbname,
            user=config.user,
        )
        try:
            _wait_ready(bouncer, timeout)
            return bouncer
        except RuntimeError as exc:
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


def pgbouncer_or_skip(workdir: Path, **options: Any) -> PgBouncer:
    """``start_pgbouncer(workdir, **options)``; without the binary: skip, or fail under CI."""
    import pytest

    if find_pgbouncer() is None:
        why = "pgbouncer is not installed (make pgbouncer installs the Debian package)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must test through PgBouncer")
        pytest.skip(why)
    return start_pgbouncer(workdir, **options)
