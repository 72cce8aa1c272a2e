"""Throwaway PostgreSQL, MariaDB and Redis servers for the test suite.

Each server is a private instance: a temporary data directory, a free TCP port on 127.0.0.1,
a real user with a random password, and memory settings sized for a small shared machine. It
is started lazily, the first time a test requests its fixture, and once per pytest session;
it is stopped and its directory removed when the session ends, also on a failure, on
KeyboardInterrupt (pytest tears its fixtures down) and at interpreter exit (``atexit``). On
Linux the server also receives a signal if the process that started it dies, so a killed
pytest leaves no server behind.

Fixtures (conftest.py imports them):

* ``postgres_server``, ``mysql_server``, ``redis_server`` (session scope): a :class:`Server`
  handle with ``url``, ``host``, ``port``, ``user``, ``password``, ``database`` and
  ``stop()``, ``start()``, ``kill()``, ``is_running()`` for fault injection. ``start()``
  reuses the port and the data directory, so clients reconnect to the same data.
* ``postgres_url``, ``mysql_url``, ``redis_url`` (function scope): the URL of a fresh, empty
  database (``test_<n>``; for Redis a flushed database index) that is discarded after the test
  (MariaDB drops it; PostgreSQL empties it for reuse, as creating one costs far more; Redis
  flushes it). They restart the session's server first if an earlier test left it stopped.

If a server's binaries or its Python driver are missing, or the server does not start, the
fixture skips the test with a reason that names what is missing and the Debian package (or
pip package) to install. With ``CACHEHAVEN_REQUIRE_SERVERS=1`` it fails the test instead, so
CI cannot pass by skipping. ``CACHEHAVEN_SERVER_TIMEOUT`` (seconds, default 60) bounds each
startup and shutdown.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import importlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Type, TypeVar

import pytest

__all__ = [
    "REQUIRE_ENV",
    "TIMEOUT_ENV",
    "MysqlServer",
    "PostgresServer",
    "RedisServer",
    "Server",
    "ServerUnavailable",
    "find_binary",
    "launch",
    "mysql_server",
    "mysql_url",
    "postgres_server",
    "postgres_url",
    "redis_server",
    "redis_url",
    "require_mysqlclient",
    "search_dirs",
]

#: Set to ``1`` to turn a missing or broken server into a test failure instead of a skip.
REQUIRE_ENV = "CACHEHAVEN_REQUIRE_SERVERS"
#: Seconds allowed for one server to start (and to stop); defaults to 60.
TIMEOUT_ENV = "CACHEHAVEN_SERVER_TIMEOUT"

_HOST = "127.0.0.1"
_USER = "cachehaven"
_DATABASE = "cachehaven"
_LOG_TAIL_LINES = 12


class ServerUnavailable(RuntimeError):
    """A throwaway server cannot be provided: a binary or driver is missing, or it did not start.

    The message says what is missing or what went wrong and how to fix it; it never contains
    the server's password.
    """


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no")


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else 60.0
    except ValueError:
        value = 60.0
    return value if value > 0 else 60.0


def search_dirs(kind: str) -> List[str]:
    """The directories searched, in order, for the binaries of server ``kind``.

    ``kind`` is ``"postgres"``, ``"mysql"`` or ``"redis"``. PostgreSQL's server binaries are
    not on PATH on Debian, so its versioned ``/usr/lib/postgresql/<ver>/bin`` directories come
    first, newest version first.
    """
    path_dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    if kind == "postgres":

        def version(d: str) -> List[int]:
            return [int(p) for p in re.findall(r"\d+", Path(d).parent.name)]

        versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
        dirs = [*versioned, "/usr/local/pgsql/bin", *path_dirs]
    else:
        dirs = [*path_dirs, *sbin]
    return list(dict.fromkeys(dirs))


def find_binary(kind: str, names: Sequence[str], package: str) -> str:
    """The path of the first of ``names`` found in :func:`search_dirs` for ``kind``.

    Raises :class:`ServerUnavailable` naming the binary and the Debian ``package`` that
    provides it when none is found.
    """
    dirs = search_dirs(kind)
    for d in dirs:
        for name in names:
            candidate = os.path.join(d, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    wanted = " or ".join(names)
    raise ServerUnavailable(
        f"{wanted} not found (searched {os.pathsep.join(dirs) or 'nothing'}); "
        f"install the Debian package {package} (apt-get install {package})"
    )


def _require_driver(module: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ServerUnavailable(
            f"the Python package {pip_name} is not installed ({e}); run: pip install '{pip_name}'"
        ) from e


def _proc_stat(pid: int) -> List[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...), or []."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    fields = _proc_stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def _children(pid: int) -> List[int]:
    """The pids of the live child processes of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found = []
    for path in glob.glob("/proc/[0-9]*"):
        child = int(path.rsplit("/", 1)[1])
        fields = _proc_stat(child)
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(child)
    return found


def _summarise(output: str) -> str:
    """The error lines of a tool's output (else its last lines), on one line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"error|fatal|panic|denied|cannot|could not", ln, re.I)]
    chosen = errors[:_LOG_TAIL_LINES] if errors else lines[-_LOG_TAIL_LINES:]
    return " | ".join(chosen) or "(no output)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


def _account(name: str) -> Optional[pwd.struct_passwd]:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _signal_on_parent_death(sig: int) -> Optional[Callable[[], None]]:
    """A preexec_fn asking Linux to send ``sig`` to the child when its parent dies."""
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def set_signal() -> None:
        prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG; runs after the uid/gid switch

    return set_signal


_LIVE: Set[Server] = set()


def _cleanup_all() -> None:
    for server in list(_LIVE):
        server.cleanup()


atexit.register(_cleanup_all)


class Server:
    """A private server instance owned by this process.

    Attributes a test uses: ``url`` (a SQLAlchemy or redis-py URL with the credentials),
    ``host``, ``port``, ``user``, ``password`` and ``database``. A subclass defines how to
    find the binaries, initialise the data directory, start the process and check readiness.
    """

    kind: str = ""
    package: str = ""
    #: Signal for a clean, fast shutdown.
    stop_signal: int = signal.SIGTERM
    #: Signal sent to the server if the process that started it dies.
    orphan_signal: int = signal.SIGTERM

    def __init__(self) -> None:
        self.host = _HOST
        self.port = 0
        self.user = _USER
        self.password = secrets.token_hex(16)
        self.database = _DATABASE
        self.base_dir: Optional[Path] = None
        self.log_path: Optional[Path] = None
        self.startup_seconds: Optional[float] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._log_offset = 0
        self._run_as: Optional[pwd.struct_passwd] = None
        self._counter = itertools.count(1)

    # --- what a subclass provides -------------------------------------------------------

    def _locate(self) -> None:
        """Find the binaries and import the driver, or raise ServerUnavailable."""
        raise NotImplementedError

    def _initialise(self) -> None:
        """Create the data directory's contents (runs once, before the first start)."""

    def _command(self) -> List[str]:
        raise NotImplementedError

    def _ping(self) -> None:
        """Open and close one authenticated connection; raise if the server is not ready."""
        raise NotImplementedError

    def _after_first_start(self) -> None:
        """Runs once the server first accepts connections (e.g. to create the database)."""

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server, with the credentials."""
        raise NotImplementedError

    def new_database(self) -> str:
        """Create a fresh, empty database and return its name (starts the server if stopped)."""
        raise NotImplementedError

    def release_database(self, name: str) -> None:
        """Discard a database made by :meth:`new_database`: its content is gone afterwards.

        The server may hand the (emptied) database out again. Starts the server if stopped.
        """
        raise NotImplementedError

    # --- the handle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL of the server's default database, with the credentials."""
        return self.url_for(self.database)

    def is_running(self) -> bool:
        """Whether the server process is alive (it may still be starting or stopping)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server again after :meth:`stop` or :meth:`kill`, on the same port and data.

        Returns once it accepts connections; raises :class:`ServerUnavailable` otherwise.
        Does nothing if it is already running.
        """
        if self.is_running():
            return
        if self.base_dir is None:
            raise ServerUnavailable(f"{self!r} was cleaned up and cannot be started again")
        self._spawn()
        self._wait_ready()

    def stop(self) -> None:
        """Shut the server down cleanly and wait for it to exit (clients see connection errors)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._signal(self.stop_signal)
        try:
            proc.wait(timeout=_timeout())
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Kill the server and its children with SIGKILL, as in a crash, and wait for them."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        # PostgreSQL's backends run in sessions of their own, so they are found by parent pid.
        children = _children(proc.pid)
        for pid in [proc.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()
        deadline = time.monotonic() + _timeout()
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.01)

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""
        if not self.is_running():
            self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its temporary directory. Safe to call more than once."""
        try:
            self.stop()
        finally:
            _LIVE.discard(self)
            if self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                self.base_dir = None

    def boot(self) -> None:
        """Create the data directory on a free port and start the server the first time."""
        began = time.monotonic()
        self._locate()
        _LIVE.add(self)
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"cachehaven-{self.kind}-"))
        self.log_path = self.base_dir / "server.log"
        self.log_path.touch()
        if os.geteuid() == 0 and self._run_as is not None:
            for p in (self.base_dir, self.log_path):
                os.chown(p, self._run_as.pw_uid, self._run_as.pw_gid)
        self.port = _free_port()
        self._initialise()
        for _attempt in range(3):
            self._spawn()
            try:
                self._wait_ready()
                break
            except ServerUnavailable:
                if "Address already in use" not in self._log_since_spawn():
                    raise
                self.port = _free_port()  # another process took the port: try a new one
        else:
            raise ServerUnavailable(f"{self.kind}: no free port found after 3 attempts")
        self._after_first_start()
        self.startup_seconds = time.monotonic() - began

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    # --- machinery ----------------------------------------------------------------------

    def _popen_user(self) -> Dict[str, Any]:
        if os.geteuid() != 0 or self._run_as is None or self._run_as.pw_uid == 0:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _run(self, argv: List[str], what: str) -> None:
        """Run a setup tool to completion, as the server's user; raise with its output on failure."""
        assert self.base_dir is not None
        try:
            done = subprocess.run(
                argv,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=_timeout(),
                check=False,
                **self._popen_user(),
            )
        except subprocess.TimeoutExpired as e:
            raise ServerUnavailable(f"{what} did not finish within {_timeout():.0f}s") from e
        except OSError as e:
            raise ServerUnavailable(f"{what} could not be run: {e}") from e
        if done.returncode != 0:
            output = _summarise(done.stdout.decode(errors="replace"))
            raise ServerUnavailable(f"{what} failed with exit code {done.returncode}: {output}")

    def _spawn(self) -> None:
        assert self.base_dir is not None and self.log_path is not None
        self._log_offset = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self._command(),
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches pytest, which stops the server itself
                    preexec_fn=_signal_on_parent_death(self.orphan_signal),
                    **self._popen_user(),
                )
            except OSError as e:
                raise ServerUnavailable(f"{self.kind} server could not be run: {e}") from e

    def _signal(self, sig: int) -> None:
        if self._proc is not None:
            try:
                self._proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _log_since_spawn(self) -> str:
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        return _summarise(self._log_since_spawn())

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + _timeout()
        delay = 0.02
        last_error = "no connection attempted"
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerUnavailable(
                    f"the {self.kind} server exited with code {code} before accepting connections "
                    f"on {self.host}:{self.port}; its log says: {self._log_tail()}"
                )
            try:
                self._ping()
                return
            except Exception as e:  # the driver's connection error while it boots
                last_error = f"{type(e).__name__}: {e}".replace(self.password, "***")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerUnavailable(
                    f"the {self.kind} server did not accept connections on {self.host}:{self.port} "
                    f"within {_timeout():.0f}s (last error: {last_error}); its log says: "
                    f"{self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


class PostgresServer(Server):
    """A private PostgreSQL cluster; ``url`` is ``postgresql+psycopg://user:pw@host:port/db``."""

    kind = "postgres"
    package = "postgresql"
    stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, checkpoint, exit
    orphan_signal = signal.SIGQUIT

    def __init__(self) -> None:
        super().__init__()
        self._released: List[str] = []

    def _locate(self) -> None:
        initdb = find_binary(self.kind, ("initdb",), self.package)
        self._bin = os.path.dirname(initdb)
        if not os.access(os.path.join(self._bin, "postgres"), os.X_OK):
            raise ServerUnavailable(
                f"postgres not found next to {initdb}; install the Debian package {self.package} "
                f"(apt-get install {self.package})"
            )
        self._psycopg = _require_driver("psycopg", "psycopg[binary]")
        if os.geteuid() == 0:  # postgres refuses to run as root
            self._run_as = _account("postgres") or _account("nobody")
            if self._run_as is None:
                raise ServerUnavailable(
                    "postgres refuses to run as root and there is no 'postgres' or 'nobody' "
                    "account; install the Debian package postgresql, which creates one"
                )

    def _initialise(self) -> None:
        assert self.base_dir is not None
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._run_as is not None and os.geteuid() == 0:
            os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            self._run(
                [
                    os.path.join(self._bin, "initdb"),
                    "-D",
                    str(self.base_dir / "data"),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _command(self) -> List[str]:
        assert self.base_dir is not None
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.base_dir),
            "shared_buffers": "32MB",
            "max_connections": "60",
            "fsync": "off",  # survives a killed server; only an OS crash could lose data
            "max_wal_size": "64MB",
            "log_min_messages": "warning",
        }
        argv = [os.path.join(self._bin, "postgres"), "-D", str(self.base_dir / "data")]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _connect(self, dbname: str) -> Any:
        return self._psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    def _ping(self) -> None:
        self._connect("postgres").close()

    def _after_first_start(self) -> None:
        with self._connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{self.database}" STRATEGY FILE_COPY')

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``: ``postgresql+psycopg://user:pw@host:port/db``."""
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database ``test_<n>``: a released one, emptied, or else a new one."""
        self.ensure_running()
        if self._released:
            return self._released.pop()
        name = f"test_{next(self._counter)}"
        with self._connect("postgres") as conn:
            # FILE_COPY is several times faster than the default WAL_LOG with fsync off.
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return name

    def release_database(self, name: str) -> None:
        """Empty ``name`` for reuse: disconnect its clients, drop every schema, reset its settings.

        Emptying takes milliseconds where CREATE DATABASE takes a large fraction of a second.
        If emptying fails, the database is dropped instead.
        """
        self.ensure_running()
        with self._connect("postgres") as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'ALTER DATABASE "{name}" RESET ALL')
        try:
            with self._connect(name) as conn:
                schemas = [
                    row[0]
                    for row in conn.execute(
                        "SELECT nspname FROM pg_namespace "
                        "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
                    )
                ]
                if schemas:
                    conn.execute("DROP SCHEMA " + ", ".join(f'"{s}"' for s in schemas) + " CASCADE")
                conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
                conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
                conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        except Exception:
            with self._connect("postgres") as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        self._released.append(name)


class MysqlServer(Server):
    """A private MariaDB server; ``url`` is ``mysql+pymysql://user:pw@host:port/db``."""

    kind = "mysql"
    package = "mariadb-server"

    def _locate(self) -> None:
        self._server_bin = find_binary(self.kind, ("mariadbd", "mysqld"), self.package)
        self._install_bin = find_binary(self.kind, ("mariadb-install-db", "mysql_install_db"), self.package)
        self._pymysql = _require_driver("pymysql", "pymysql")
        self._root_flag: List[str] = []
        if os.geteuid() == 0:
            self._run_as = _account("mysql")
            if self._run_as is None:
                self._root_flag = ["--user=root"]  # mariadbd refuses root unless told explicitly

    def _server_options(self) -> List[str]:
        assert self.base_dir is not None
        return [
            *self._root_flag,
            f"--datadir={self.base_dir / 'data'}",
            f"--tmpdir={self.base_dir}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=32M",
            "--innodb-log-buffer-size=8M",
            "--innodb-flush-log-at-trx-commit=2",  # survives a killed server, not an OS crash
            "--key-buffer-size=8M",
            "--aria-pagecache-buffer-size=8M",
            "--performance-schema=OFF",
            "--max-connections=100",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]

    def _initialise(self) -> None:
        assert self.base_dir is not None
        # Bootstrap mode runs without grant tables, so the user is created by an init file
        # that the first start runs (before it accepts connections) and then deletes.
        self._init_sql = self.base_dir / "init.sql"
        self._init_sql.write_text(
            f"CREATE DATABASE IF NOT EXISTS `{self.database}`;\n"
            f"CREATE USER IF NOT EXISTS '{self.user}'@'{self.host}' IDENTIFIED BY '{self.password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'{self.host}' WITH GRANT OPTION;\n"
        )
        self._init_sql.chmod(0o600)
        if self._run_as is not None and os.geteuid() == 0:
            os.chown(self._init_sql, self._run_as.pw_uid, self._run_as.pw_gid)
        # mariadb-install-db takes --no-defaults first; other options go to mariadbd --bootstrap.
        self._run(
            [
                self._install_bin,
                "--no-defaults",
                f"--basedir={Path(self._server_bin).resolve().parent.parent}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                *self._server_options(),
            ],
            os.path.basename(self._install_bin),
        )

    def _after_first_start(self) -> None:
        self._init_sql.unlink(missing_ok=True)

    def _command(self) -> List[str]:
        assert self.base_dir is not None
        return [
            self._server_bin,
            "--no-defaults",
            *self._server_options(),
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.base_dir / 'mysqld.sock'}",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            *([f"--init-file={self._init_sql}"] if self._init_sql.exists() else []),
        ]

    def _connect(self, database: Optional[str]) -> Any:
        return self._pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            connect_timeout=5,
            autocommit=True,
        )

    def _ping(self) -> None:
        self._connect(self.database).close()

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``: ``mysql+pymysql://user:pw@host:port/db``."""
        return f"mysql+pymysql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database ``test_<n>`` and return its name."""
        self.ensure_running()
        name = f"test_{next(self._counter)}"
        conn = self._connect(None)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()
        return name

    def release_database(self, name: str) -> None:
        """Drop ``name`` (waits for clients that hold locks in it)."""
        self.ensure_running()
        conn = self._connect(None)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


class RedisServer(Server):
    """A private Redis server with a password; ``url`` is ``redis://:pw@host:port/0``.

    It has 64 database indexes; :meth:`new_database` hands out indexes 1 to 63 in turn,
    flushed, and leaves index 0 (``url``) to tests that use the server directly. It writes an
    append-only file, so data survives :meth:`stop`/:meth:`start` and :meth:`kill`.
    """

    kind = "redis"
    package = "redis-server"
    databases = 64

    def __init__(self) -> None:
        super().__init__()
        self.user = ""
        self.database = "0"

    def _locate(self) -> None:
        self._server_bin = find_binary(self.kind, ("redis-server",), self.package)
        self._redis = _require_driver("redis", "redis")
        self._no_retry = _require_driver("redis.retry", "redis").Retry(
            _require_driver("redis.backoff", "redis").NoBackoff(), 0
        )

    def _initialise(self) -> None:
        assert self.base_dir is not None
        conf = self.base_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"bind {self.host}",
                    f"port {self.port}",
                    f'requirepass "{self.password}"',
                    f'dir "{self.base_dir}"',
                    'save ""',
                    "appendonly yes",
                    "appendfsync no",
                    f"databases {self.databases}",
                    "maxmemory 128mb",
                    "maxmemory-policy noeviction",
                    "daemonize no",
                    'logfile ""',
                    "",
                ]
            )
        )
        conf.chmod(0o600)

    def _command(self) -> List[str]:
        assert self.base_dir is not None
        # The port on the command line overrides the file's, so a retry on a new port works.
        return [self._server_bin, str(self.base_dir / "redis.conf"), "--port", str(self.port)]

    def _client(self, db: int) -> Any:
        retry = importlib.import_module("redis.retry").Retry(
            importlib.import_module("redis.backoff").NoBackoff(), 0
        )
        # No retries: redis-py's default retries a refused connection with backoff for ~4 s.
        return self._redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            db=db,
            socket_connect_timeout=5,
            retry=retry,
        )

    def _ping(self) -> None:
        client = self._client(0)
        try:
            client.ping()
        finally:
            client.close()

    def url_for(self, database: str) -> str:
        """The redis-py URL of database index ``database``: ``redis://:pw@host:port/<index>``."""
        return f"redis://:{self.password}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """Flush the next database index (1 to 63, in turn) and return it."""
        self.ensure_running()
        index = next(self._counter) % (self.databases - 1) + 1
        self._flush(index)
        return str(index)

    def release_database(self, name: str) -> None:
        """Flush database index ``name``."""
        self.ensure_running()
        self._flush(int(name))

    def _flush(self, index: int) -> None:
        client = self._client(index)
        try:
            client.flushdb()
        finally:
            client.close()


S = TypeVar("S", bound=Server)


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} [{REQUIRE_ENV} is set, so this fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


def require_mysqlclient() -> None:
    """Skip the calling test unless mysqlclient (``MySQLdb``, the C driver DatabaseCache
    prefers for MariaDB when it is installed) can be imported; fail it instead when
    ``CACHEHAVEN_REQUIRE_SERVERS`` is set, as in CI."""
    try:
        importlib.import_module("MySQLdb")
    except ImportError as e:
        _unavailable(
            f"the Python package mysqlclient is not installed ({e}); run: pip install mysqlclient "
            "(it builds against the Debian packages libmariadb-dev and pkg-config)"
        )


def launch(kind: Type[S]) -> S:
    """Start a new throwaway server of class ``kind`` (PostgresServer, MysqlServer or RedisServer).

    If it cannot be provided, skips the calling test (fails it when ``CACHEHAVEN_REQUIRE_SERVERS``
    is set) with the reason. The caller owns the server and calls :meth:`Server.cleanup`; an
    ``atexit`` hook also cleans up every server still alive.
    """
    server = kind()
    reason: Optional[str] = None
    try:
        server.boot()
    except ServerUnavailable as e:
        reason = str(e)
    except BaseException:
        server.cleanup()
        raise
    if reason is not None:
        server.cleanup()
        _unavailable(reason)  # outside the except block, so the report shows no chained traceback
    return server


def _session_server(kind: Type[S]) -> Iterator[S]:
    server = launch(kind)
    try:
        yield server
    finally:
        server.cleanup()


def _fresh_database(server: Server) -> Iterator[str]:
    name = server.new_database()
    try:
        yield server.url_for(name)
    finally:
        server.release_database(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole session (started on first use)."""
    yield from _session_server(PostgresServer)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MysqlServer]:
    """A private MariaDB server for the whole session (started on first use)."""
    yield from _session_server(MysqlServer)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private Redis server for the whole session (started on first use)."""
    yield from _session_server(RedisServer)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the test."""
    yield from _fresh_database(postgres_server)


@pytest.fixture
def mysql_url(mysql_server: MysqlServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty MariaDB database, dropped after the test."""
    yield from _fresh_database(mysql_server)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """redis-py URL of a flushed database index of the private Redis, flushed again after the test."""
    yield from _fresh_database(redis_server)
