"""``DatabaseCache``: entries in one SQL table (SQLite, PostgreSQL, MySQL/MariaDB), via SQLAlchemy Core.

One row per entry: ``key`` (the 32-hex digest of the call, primary key), ``func`` (the
function identity, indexed, for per-function size and clear), ``record`` (the serialized
record, see :mod:`cachehaven.serialize`) and ``expires_at`` (unix seconds or NULL, indexed).
A memoized hit is one SELECT by primary key; a store is one upsert statement.

With ``key_scheme="ahvn"`` and no ``table=``, the cache reads and writes AgentHeaven 0.9.2's
``cache_orm`` table (``id``, ``content`` JSON), so a cache written by AgentHeaven can be read
and iterated, and AgentHeaven can read what this cache writes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import select
import struct
import threading
import time
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Type, Union

from .. import _ahvn
from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry
from ..errors import BackendError, ConfigError
from ..memoize import check_ttl
from ..serialize import (
    Serializer,
    encode_record,
    encode_results,
    load_current_value,
    load_record,
    record_from_jsonable,
    resolve_serializer,
)

try:  # SQLAlchemy is an optional dependency: the error is raised when a DatabaseCache is made
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.dialects import mysql as sa_mysql
    from sqlalchemy.dialects import postgresql as sa_pg
    from sqlalchemy.dialects import sqlite as sa_sqlite
    from sqlalchemy.pool import QueuePool, StaticPool
except ImportError:  # pragma: no cover - exercised only without sqlalchemy installed
    sa = None  # type: ignore[assignment]

__all__ = ["DatabaseCache"]

logger = logging.getLogger("cachehaven")

#: Provider spellings accepted, mapped to the canonical name.
PROVIDERS: Dict[str, str] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pg": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
}
#: The driver each server provider uses: (module, pip requirement, cachehaven extra).
_DRIVERS: Dict[str, Tuple[str, str, str]] = {
    "postgresql": ("psycopg", "psycopg[binary]", "postgres"),
    "mysql": ("pymysql", "pymysql", "mysql"),
    "mariadb": ("pymysql", "pymysql", "mysql"),
}
_DRIVERNAMES = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def _drivername(provider: str) -> str:
    """SQLAlchemy's ``dialect+driver`` for a server provider. MySQL/MariaDB use mysqlclient
    (``MySQLdb``, a C extension: about a third of PyMySQL's client time per statement) when
    it is installed, else PyMySQL."""
    if provider in ("mysql", "mariadb") and importlib.util.find_spec("MySQLdb") is not None:
        return f"{provider}+mysqldb"
    return _DRIVERNAMES[provider]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_DEFAULT_TABLE = "cachehaven"
_AHVN_TABLE = "cache_orm"  # AgentHeaven 0.9.2's DatabaseCache table
_FUNC_LEN = 255  # longer identities are stored as a prefix plus a hash (MySQL indexes need a bound)
_CHUNK = 500  # keys per ``IN (...)`` in _fetch_many (SQLite's old limit is 999 parameters)
_PAGE = 500  # rows per page when iterating
_CLEANUP_EVERY = 60.0  # seconds between DELETEs of expired rows (triggered by writes)
_BUSY_TIMEOUT = 30.0  # seconds SQLite waits for another writer's lock
#: MySQL tables: transactional, and UTF-8 whatever the server's default charset
_MYSQL_TABLE: Dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
_PING_AFTER = 1.0  # a pooled server connection idle this long is pinged before use
#: At most this many connections skip the pool between single-statement calls (see _raw);
#: the pool's other connections stay free for everything else.
_HOT_CONNECTIONS = 4
# libpq's result status and error field codes (psycopg.pq.ExecStatus / DiagnosticField)
_PQ_COMMAND_OK = 1
_PQ_TUPLES_OK = 2
_PQ_SQLSTATE = ord("C")


#: A row read back: its entry, canonical key bytes and expiry time (see DatabaseCache._decode)
_Decoded = Tuple[CacheEntry, Optional[bytes], Optional[float]]

#: In a forked child, the parent's connections (and pools) it inherited: never used, never
#: collected (see DatabaseCache._forked).
_INHERITED: List[Any] = []
#: How many forks led to this process (counted in each child): a cache made before the last
#: one holds its parent's connections. Cheaper to check on every call than os.getpid() (a
#: system call).
_FORKS = [0]


def _count_fork() -> None:
    _FORKS[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)


def _canonical_provider(provider: str) -> str:
    if not isinstance(provider, str) or provider.lower() not in PROVIDERS:
        valid = ", ".join(repr(p) for p in PROVIDERS)
        raise ConfigError(f"provider must be one of {valid}; got {provider!r}")
    return PROVIDERS[provider.lower()]


def _func_column(func: str) -> str:
    """The value stored in the ``func`` column: the identity, or a bounded stand-in for long ones."""
    if len(func) <= _FUNC_LEN:
        return func
    return f"{func[:200]}~{hashlib.sha256(func.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


class _NoLock:
    """A lock that does nothing (server databases and SQLite files serialize themselves)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


class DatabaseCache(BaseCache):
    """Cache entries in a SQL table: SQLite (a file or ``:memory:``), PostgreSQL or MySQL/MariaDB.

    ``DatabaseCache(provider="sqlite", database=None, exclude=None, *, host=None, port=None,
    username=None, password=None, url=None, table=None, ttl=None, key_scheme="blake3",
    serializer=None, secret=None, pool_size=5, engine_options=None)``

    * ``provider``: ``"sqlite"`` (the default), ``"postgresql"`` (also ``"pg"``,
      ``"postgres"``; driver psycopg 3, ``pip install cachehaven[postgres]``) or ``"mysql"``
      (also ``"mariadb"``; driver PyMySQL, ``pip install cachehaven[mysql]``, or mysqlclient
      when it is installed, ``pip install mysqlclient``: faster, a C extension).
    * The connection: ``database`` (for SQLite a file path, or ``None``/``":memory:"`` for a
      database private to this cache object), ``host``, ``port``, ``username``,
      ``password``; or a full SQLAlchemy ``url=`` instead of those (the provider is then
      taken from the URL).
    * ``table``: the table's name (created if missing; several caches with different tables
      share one database without seeing each other's rows). Default ``"cachehaven"``, or
      AgentHeaven's ``"cache_orm"`` with ``key_scheme="ahvn"``.
    * ``ttl``: default time-to-live (seconds or timedelta) for entries stored without one.
    * ``serializer``: ``"json"`` (the default, safe), ``"pickle"`` (HMAC-signed with
      ``secret`` or ``$CACHEHAVEN_PICKLE_SECRET``) or a :class:`~cachehaven.serialize.Serializer`.
    * ``pool_size``: connections kept per process (PostgreSQL, MySQL, SQLite files).
    * ``engine_options``: extra keyword arguments for ``sqlalchemy.create_engine``, which
      override the defaults below (``connect_args`` is merged key by key; the isolation
      level, pool class and pool reset are managed here and cannot be set).

    AgentHeaven: with ``key_scheme="ahvn"`` and no ``table=``, the cache uses AgentHeaven
    0.9.2's ``cache_orm`` table (``id``: the md5 key as 40 decimal digits, ``content``: the
    entry as AgentHeaven's tagged JSON; JSONB on PostgreSQL), so a table AgentHeaven wrote is
    read and iterated, and AgentHeaven reads what this cache writes. Values AgentHeaven's
    format would not give back as they were (bytes, frozensets, aware datetimes, non-str
    dict keys...) raise SerializationError there; pass ``table=`` for cachehaven's own layout,
    which stores anything the serializer does. The first entry stored with a TTL adds a
    nullable ``expires_at`` column to an AgentHeaven table (AgentHeaven ignores it).

    Defaults: PostgreSQL and MySQL use a connection pool of autocommit connections; a pooled
    connection idle for over a second is pinged before use, and a lost connection
    invalidates the pool, so a restarted server is picked up by the same cache object
    (``engine_options={"pool_pre_ping": True}`` pings before every use instead); SQLite files
    use WAL mode and a busy timeout, so several processes can share one file; an in-memory
    SQLite database is one connection shared by all threads under a lock. Thread-safe.

    Failures of the database raise :class:`~cachehaven.errors.BackendError`, naming the
    operation and the provider; credentials never appear in errors, logs or ``repr``.
    """

    def __init__(
        self,
        provider: Optional[str] = None,
        database: Optional[Union[str, os.PathLike[str]]] = None,
        exclude: Optional[Iterable[str]] = None,
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        url: Any = None,
        table: Optional[str] = None,
        ttl: Any = None,
        key_scheme: str = "blake3",
        serializer: Any = None,
        secret: Optional[bytes | str] = None,
        pool_size: int = 5,
        engine_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        if sa is None:
            raise ConfigError(
                "DatabaseCache needs SQLAlchemy 2: pip install 'sqlalchemy>=2' "
                "(or pip install 'cachehaven[sql]')"
            )
        if table is not None and (not isinstance(table, str) or not _IDENTIFIER.fullmatch(table)):
            raise ConfigError(
                f"table must be an identifier (a letter or _, then letters, digits or _; at most 48 "
                f"characters); got {table!r}"
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be a positive int; got {pool_size!r}")
        if engine_options is not None and not isinstance(engine_options, dict):
            raise ConfigError(f"engine_options must be a dict, not {type(engine_options).__name__}")
        self._ttl = check_ttl(ttl)
        self._secrets: List[str] = []
        self._closed = False
        self._next_cleanup = 0.0
        #: until then (time.monotonic()), batches of missed rows upsert instead of inserting
        self._upsert_until = 0.0
        self._json_content = False
        self._schema_lock = threading.Lock()

        sa_url = self._make_url(provider, database, host, port, username, password, url)
        self._url = sa_url
        self._safe_url = sa_url.render_as_string(hide_password=True)
        self._memory = self.provider == "sqlite" and (sa_url.database or ":memory:") == ":memory:"
        self._lock: Any = threading.RLock() if self._memory else _NoLock()
        self._engine = self._create_engine(sa_url, pool_size, dict(engine_options or {}))
        # Connections (with a cursor) kept out of the pool between single-statement calls,
        # most recently used last: see _raw.
        self._hot: List[Tuple[Any, Any, float]] = []
        self._hot_max = 0 if self._memory else min(pool_size, _HOT_CONNECTIONS)
        #: keyword arguments for a hot connection's cursor (see _build_statements)
        self._cursor_args: Dict[str, Any] = {}
        self._forks = _FORKS[0]
        dbapi = getattr(self._engine.dialect, "loaded_dbapi", None) or self._engine.dialect.dbapi
        #: what a failing database raises: SQLAlchemy's errors, the driver's, and socket errors
        self._failures: Tuple[Type[BaseException], ...] = (sa_exc.SQLAlchemyError, OSError, dbapi.Error)

        try:
            self._setup_table(table, serializer, secret)
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------------ configuration
    def _make_url(
        self,
        provider: Optional[str],
        database: Any,
        host: Optional[str],
        port: Optional[int],
        username: Optional[str],
        password: Optional[str],
        url: Any,
    ) -> Any:
        parts = {"database": database, "host": host, "port": port, "username": username, "password": password}
        if password:
            self._add_secret(str(password))
        if url is not None:
            given = [name for name, value in parts.items() if value is not None]
            if given:
                raise ConfigError(
                    f"pass either url= or the connection parts, not both (got url= and {', '.join(given)}=)"
                )
            if isinstance(url, sa.engine.URL):
                parsed = url
            elif isinstance(url, str):
                try:
                    parsed = sa.engine.make_url(url)
                except Exception:
                    raise ConfigError(
                        "url is not a valid database URL (expected e.g. "
                        "'postgresql://user:password@host:5432/dbname')"
                    ) from None
            else:
                raise ConfigError(f"url must be a str or sqlalchemy URL, not {type(url).__name__}")
            if parsed.password:
                self._add_secret(str(parsed.password))
            backend = parsed.get_backend_name()
            from_url = PROVIDERS.get(backend, backend)
            if from_url not in _DRIVERNAMES and from_url != "sqlite":
                valid = ", ".join(repr(p) for p in PROVIDERS)
                raise ConfigError(f"url names the database {backend!r}; supported providers are {valid}")
            chosen = None if provider is None else _canonical_provider(provider)
            if chosen not in (None, from_url) and {chosen, from_url} != {"mysql", "mariadb"}:
                raise ConfigError(f"provider={provider!r} does not match the url's database {backend!r}")
            self.provider = from_url
            if from_url != "sqlite" and "+" not in parsed.drivername:
                parsed = parsed.set(drivername=_drivername(from_url))
            return parsed
        self.provider = _canonical_provider(provider if provider is not None else "sqlite")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ConfigError(f"port must be an int between 1 and 65535; got {port!r}")
        if self.provider == "sqlite":
            extra = [name for name in ("host", "port", "username", "password") if parts[name] is not None]
            if extra:
                raise ConfigError(
                    f"the sqlite provider takes only database= (a path), not {', '.join(extra)}="
                )
            if database is None or database == ":memory:":
                return sa.engine.URL.create("sqlite")
            if not isinstance(database, (str, os.PathLike)):
                raise ConfigError(f"database must be a file path for sqlite, not {type(database).__name__}")
            path = os.path.expanduser(os.fspath(database))
            parent = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise BackendError(
                    f"DatabaseCache(sqlite): cannot create the directory {parent!r}: {e}"
                ) from e
            return sa.engine.URL.create("sqlite", database=path)
        for name in ("database", "host", "username"):
            if parts[name] is not None and not isinstance(parts[name], str):
                raise ConfigError(f"{name} must be a str, not {type(parts[name]).__name__}")
        return sa.engine.URL.create(
            _drivername(self.provider),
            username=username,
            password=password,
            host=host or "localhost",
            port=port,
            database=database,
        )

    def _add_secret(self, secret: str) -> None:
        from urllib.parse import quote, quote_plus

        for form in (secret, quote(secret, safe=""), quote_plus(secret)):
            if form and form not in self._secrets:
                self._secrets.append(form)
        self._secrets.sort(key=len, reverse=True)

    def _create_engine(self, url: Any, pool_size: int, options: Dict[str, Any]) -> Any:
        connect_args: Dict[str, Any] = {}
        kwargs: Dict[str, Any] = {}
        if self.provider == "sqlite":
            connect_args["check_same_thread"] = False
            if self._memory:
                kwargs["poolclass"] = StaticPool
            else:
                connect_args["timeout"] = _BUSY_TIMEOUT
                kwargs.update(poolclass=QueuePool, pool_size=pool_size, max_overflow=max(10, pool_size))
        else:
            connect_args["connect_timeout"] = 10
            kwargs.update(
                poolclass=QueuePool,
                pool_size=pool_size,
                max_overflow=max(10, pool_size),
                pool_pre_ping=False,  # replaced by _IdlePing unless engine_options asks for it
                # every statement commits by itself; multi-statement work uses BEGIN/COMMIT,
                # so returning a connection to the pool needs no ROLLBACK round trip
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
            )
        managed = sorted({"isolation_level", "pool_reset_on_return", "poolclass"} & set(options))
        if managed:
            raise ConfigError(
                f"engine_options may not set {', '.join(managed)}: DatabaseCache manages its own "
                "transactions and pooling"
            )
        connect_args.update(options.pop("connect_args", None) or {})
        kwargs.update(options)
        kwargs["connect_args"] = connect_args
        try:
            engine = sa.create_engine(url, **kwargs)
        except ImportError as e:
            raise ConfigError(self._missing_driver(e)) from None
        except sa_exc.NoSuchModuleError:
            raise ConfigError(
                f"SQLAlchemy has no dialect or driver for {url.drivername!r}; "
                f"supported: sqlite, postgresql+psycopg, mysql+mysqldb (mysqlclient), mysql+pymysql"
            ) from None
        except (TypeError, sa_exc.ArgumentError) as e:
            raise ConfigError(
                f"engine_options are not valid for this engine: {self._scrub(str(e))}"
            ) from None
        if self.provider == "sqlite" and not self._memory:
            sa.event.listen(engine, "connect", _sqlite_file_pragmas)
        elif self.provider != "sqlite" and not kwargs.get("pool_pre_ping"):
            _IdlePing(engine).install()
        return engine

    def _missing_driver(self, e: ImportError) -> str:
        module, pip_name, extra = _DRIVERS.get(
            self.provider, ("sqlite3", "a Python built with sqlite3", "sql")
        )
        if e.name == "MySQLdb":  # asked for by the url (mysql+mysqldb://)
            return (
                f"the {self.provider} provider with the mysqldb driver needs mysqlclient, which is not "
                "installed: pip install mysqlclient (it builds against libmariadb-dev and pkg-config), "
                "or use PyMySQL: mysql+pymysql:// (pip install 'cachehaven[mysql]')"
            )
        return (
            f"the {self.provider} provider needs the {module} driver, which is not installed "
            f"({e.name or e}): pip install '{pip_name}' (or pip install 'cachehaven[{extra}]')"
        )

    # ------------------------------------------------------------------ the table
    def _setup_table(self, table: Optional[str], serializer: Any, secret: Any) -> None:
        """Find or create the table, decide its layout, and build every statement once."""
        name = table or (_AHVN_TABLE if self.key_scheme == "ahvn" else _DEFAULT_TABLE)
        self.table = name
        # options are checked before the database is touched
        resolved = resolve_serializer(serializer, secret=secret)
        if serializer is not None and self.key_scheme == "ahvn" and table is None:
            raise ConfigError(
                "serializer= does not apply to AgentHeaven's table layout, which stores JSON as "
                "AgentHeaven does; omit it or pass table= to use cachehaven's layout"
            )
        columns = self._existing_columns(name)
        if columns is None:
            ahvn = self.key_scheme == "ahvn" and table is None
            self._ahvn = ahvn
            self._has_expiry = True
            self._json_content = self.provider == "postgresql"
            self._table = _ahvn_table(name, True) if ahvn else _cachehaven_table(name)
            self._run("create the table", lambda conn: self._create(conn))
        elif {"key", "func", "record", "expires_at"} <= set(columns):
            self._ahvn = False
            self._has_expiry = True
            self._table = _cachehaven_table(name)
        elif {"id", "content"} <= set(columns):
            self._ahvn = True
            self._has_expiry = "expires_at" in columns
            content_type = columns["content"]
            self._json_content = isinstance(content_type, sa.types.JSON)
            self._table = _ahvn_table(name, self._has_expiry, json_content=self._json_content)
        else:
            raise ConfigError(
                f"table {name!r} exists with columns {sorted(columns)}, which is neither cachehaven's "
                f"layout (key, func, record, expires_at) nor AgentHeaven's (id, content); "
                f"choose another table="
            )
        if self._ahvn:
            if self.key_scheme != "ahvn":
                raise ConfigError(
                    f"table {name!r} has AgentHeaven's layout, whose keys are AgentHeaven's md5 digests; "
                    f"open it with key_scheme='ahvn'"
                )
            if serializer is not None:
                raise ConfigError(
                    f"serializer= does not apply to table {name!r}, which has AgentHeaven's layout "
                    "and stores JSON as AgentHeaven does"
                )
            self._serializer: Optional[Serializer] = None
        else:
            self._serializer = resolved
        self._build_statements()

    def _existing_columns(self, name: str) -> Optional[Dict[str, Any]]:
        def inspect(conn: Any) -> Optional[Dict[str, Any]]:
            insp = sa.inspect(conn)
            if not insp.has_table(name):
                return None
            return {c["name"].lower(): c["type"] for c in insp.get_columns(name)}

        return self._run("inspect the table", inspect)

    def _create(self, conn: Any) -> None:
        try:
            self._table.metadata.create_all(conn, checkfirst=True)
        except sa_exc.SQLAlchemyError:
            # another process may have created it at the same moment
            if not sa.inspect(conn).has_table(self.table):
                raise
        if self.provider == "sqlite":
            conn.commit()

    def _build_statements(self) -> None:
        t = self._table
        if self._ahvn:
            self._keycol, self._payload = t.c.id, t.c.content
        else:
            self._keycol, self._payload = t.c.key, t.c.record
        keycol, payload = self._keycol, self._payload
        now: Any = sa.bindparam("now", type_=sa.Double())
        live = sa.or_(t.c.expires_at.is_(None), t.c.expires_at > now) if self._has_expiry else sa.true()
        self._live = live
        self._sel_one = sa.select(payload).where(keycol == sa.bindparam("k"), live)
        self._sel_many = sa.select(keycol, payload).where(
            keycol.in_(sa.bindparam("keys", expanding=True)), live
        )
        expiry = [t.c.expires_at] if self._has_expiry else []
        self._sel_row = sa.select(payload, *expiry).where(keycol == sa.bindparam("k"))
        self._del_one = sa.delete(t).where(keycol == sa.bindparam("k"))
        self._page = (
            sa.select(keycol, payload)
            .where(live, keycol > sa.bindparam("after"))
            .order_by(keycol)
            .limit(_PAGE)
        )
        self._count = sa.select(sa.func.count()).select_from(t).where(live)
        self._wipe_stmt = sa.delete(t)
        if self._has_expiry:
            self._cleanup = sa.delete(t).where(t.c.expires_at.is_not(None), t.c.expires_at <= now)
        if not self._ahvn:
            f: Any = sa.bindparam("f")
            self._count_func = sa.select(sa.func.count()).select_from(t).where(t.c.func == f, live)
            self._del_func_live = sa.delete(t).where(t.c.func == f, live)
            self._del_func = sa.delete(t).where(t.c.func == f)
        self._upsert = self._upsert_statement()
        # the two hottest statements run on the raw DBAPI connection, compiled once; on
        # PostgreSQL their cursors read results in binary (a record arrives as its bytes,
        # not as hex text to decode), except for AgentHeaven's JSON content
        self._cursor_args = {"binary": True} if self.provider == "postgresql" and not self._ahvn else {}
        # MySQL/MariaDB plan every statement they are sent: with mysqlclient the hit selects
        # by key alone and the expiry is checked here, which keeps the optimizer from
        # weighing the expires_at index on every hit (25 instead of 29 us a hit on MariaDB;
        # PyMySQL would spend as much parsing the extra column in Python). In cachehaven's
        # layout the record carries its expiry time (checked by _value_for and _entry_for),
        # so only the record is selected; AgentHeaven's content has none, so the column
        # comes with it. PostgreSQL's hit is a prepared statement, planned once.
        driver = self._engine.dialect.driver
        self._expiry_in_python = driver == "mysqldb" and self._has_expiry and self._ahvn
        by_key = keycol == sa.bindparam("k")
        if driver == "mysqldb":
            get = sa.select(payload, *([t.c.expires_at] if self._expiry_in_python else [])).where(by_key)
        else:
            get = self._sel_one
        self._raw_get = _RawStatement(get, self._engine.dialect)
        #: the hit's lookup on mysqlclient, up to the key (see _hot_get)
        self._mysql_get: Optional[bytes] = None
        if not self._ahvn and driver in ("psycopg", "mysqldb"):
            q = self._quote
            table, key, record, expires_at = q(self.table), q("key"), q("record"), q("expires_at")
            if driver == "psycopg":
                live = f"({expires_at} IS NULL OR {expires_at} > $2)"
                sql = f"SELECT {record} FROM {table} WHERE {key} = $1 AND {live}"
                self._raw_get.native = _PqQuery(b"cachehaven_get", sql, ("k", "now"))
            else:
                self._mysql_get = f"SELECT {record} FROM {table} WHERE {key} = '".encode()
        self._raw_put = (
            None if self._json_content and self._ahvn else _RawStatement(self._upsert, self._engine.dialect)
        )
        self._raw_cleanup = _RawStatement(self._cleanup, self._engine.dialect) if self._has_expiry else None
        self._raw_put_many, self._raw_get_many = self._array_statements()

    def _array_statements(self) -> Tuple[Optional[_RawStatement], Optional[_RawStatement]]:
        """PostgreSQL (cachehaven's layout, psycopg): a batch write and a batch lookup of any
        number of rows in one statement each, prepared once per connection and run on libpq
        (see :class:`_PqPutMany` and :class:`_PqGetMany`), with the rows' columns (or the
        keys) as array parameters in binary: ``INSERT ... SELECT ... FROM unnest(...)`` and a
        join with ``unnest(keys)``. One statement, one plan and one round trip per batch.
        None elsewhere (MySQL's driver already folds ``executemany`` into multi-row INSERTs;
        SQLite runs in-process)."""
        if self.provider != "postgresql" or self._ahvn or self._engine.dialect.driver != "psycopg":
            return None, None
        q = self._quote
        table, key, record, expires_at = q(self.table), q("key"), q("record"), q("expires_at")
        columns = ", ".join(q(c) for c in ("key", "func", "record", "expires_at"))
        insert = (
            f"INSERT INTO {table} ({columns}) SELECT k, f, r, $4::double precision "
            f"FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(k, f, r)"
        )
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in ("func", "record", "expires_at"))
        upsert = f"{insert} ON CONFLICT ({key}) DO UPDATE SET {sets}"
        # each unnested key probes the primary key (LATERAL ... LIMIT 1 keeps the planner from
        # flattening the probe into a join): "key = ANY(keys)" under a plan cached while the
        # table was small filtered a sequential scan with the array, comparing every row with
        # every key (190 ms for 1,000 keys on 20,000 rows), and a plain join was planned as
        # a hash join over a sequential scan until the plan cache settled on a generic plan
        # (7-10 ms instead of 1-1.5 for 1,000 keys on 20,000 rows, for the first five
        # lookups on every connection)
        get = (
            f"SELECT k.{key}, t.{record} FROM unnest($1::text[]) AS k({key}) "
            f"CROSS JOIN LATERAL (SELECT r.{record} FROM {table} AS r WHERE r.{key} = k.{key} "
            f"AND (r.{expires_at} IS NULL OR r.{expires_at} > $2::double precision) LIMIT 1) AS t"
        )
        put_many = _RawStatement.from_text(upsert, ())
        put_many.native = _PqPutMany(
            _PqPrepared(b"cachehaven_insert_many", insert), _PqPrepared(b"cachehaven_upsert_many", upsert)
        )
        get_many = _RawStatement.from_text(get, ())
        get_many.native = _PqGetMany(b"cachehaven_get_many", get)
        return put_many, get_many

    def _upsert_statement(self) -> Any:
        t = self._table
        keycol = self._keycol
        others = [c for c in t.columns if c is not keycol]
        if self.provider in ("mysql", "mariadb"):
            my_ins = sa_mysql.insert(t)
            return my_ins.on_duplicate_key_update({c.name: my_ins.inserted[c.name] for c in others})
        if self.provider == "postgresql":
            pg_ins = sa_pg.insert(t)
            return pg_ins.on_conflict_do_update(
                index_elements=[keycol], set_={c.name: pg_ins.excluded[c.name] for c in others}
            )
        lite_ins = sa_sqlite.insert(t)
        return lite_ins.on_conflict_do_update(
            index_elements=[keycol], set_={c.name: lite_ins.excluded[c.name] for c in others}
        )

    def _add_expiry_column(self) -> None:
        """Add ``expires_at`` to an AgentHeaven table the first time an entry with a TTL is
        stored (AgentHeaven ignores the extra, nullable column)."""
        with self._schema_lock:
            if self._has_expiry:
                return
            ddl = f"ALTER TABLE {self._quote(self.table)} ADD COLUMN expires_at {self._double_sql()}"

            def alter(conn: Any) -> None:
                try:
                    conn.exec_driver_sql(ddl)
                except sa_exc.SQLAlchemyError:
                    if "expires_at" not in {
                        c["name"].lower() for c in sa.inspect(conn).get_columns(self.table)
                    }:
                        raise
                if self.provider == "sqlite":
                    conn.commit()

            self._run("add the expires_at column", alter)
            self._has_expiry = True
            self._table = _ahvn_table(self.table, True, json_content=self._json_content)
            self._build_statements()

    def _quote(self, name: str) -> str:
        return self._engine.dialect.identifier_preparer.quote(name)

    def _double_sql(self) -> str:
        return sa.Double().compile(dialect=self._engine.dialect)

    # ------------------------------------------------------------------ errors
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
        return re.sub(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)", r"\1\2***", text)

    def _error(self, op: str, e: BaseException) -> BackendError:
        """A BackendError for a failed operation, with credentials scrubbed everywhere."""
        orig = getattr(e, "orig", None)
        cause = orig if isinstance(orig, BaseException) else e
        detail = " ".join(str(cause).split()) or type(cause).__name__
        if len(detail) > 500:
            detail = detail[:500] + "..."
        for exc in (e, orig):  # the chained exceptions are printed in tracebacks too
            if isinstance(exc, BaseException) and self._secrets:
                exc.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in exc.args)
        return BackendError(
            f"DatabaseCache({self.provider}): {op} failed (table {self.table!r} at {self._safe_url}): "
            f"{type(cause).__name__}: {self._scrub(detail)}"
        )

    def _run(self, op: str, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` on a pooled SQLAlchemy connection, wrapping failures."""
        if self._closed:
            raise BackendError(f"DatabaseCache({self.provider}): {op} failed: the cache is closed")
        with self._lock:
            if self._forks != _FORKS[0]:
                self._forked()
            try:
                with self._engine.connect() as conn:
                    return work(conn)
            except self._failures as e:
                raise self._error(op, e) from e

    def _run_transaction(self, op: str, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` inside one transaction."""

        def transaction(conn: Any) -> Any:
            if self.provider == "sqlite":
                with conn.begin():
                    return work(conn)
            # the pooled connections autocommit: open an explicit transaction
            conn.exec_driver_sql("BEGIN")
            try:
                result = work(conn)
            except BaseException:
                try:
                    conn.exec_driver_sql("ROLLBACK")
                except sa_exc.SQLAlchemyError:
                    pass
                raise
            conn.exec_driver_sql("COMMIT")
            return result

        return self._run(op, transaction)

    def _raw(self, op: str, stmt: _RawStatement, params: Dict[str, Any], fetch: bool) -> Any:
        """Execute one precompiled statement on a DBAPI connection (the fast path); with
        ``fetch``, return its rows. The connection is a hot one (see :meth:`_checkout`)."""
        with self._lock:
            raw, cursor = self._checkout(op)
            try:
                if cursor is None:
                    cursor = raw.cursor(**self._cursor_args)
                if stmt.native is not None:
                    rows = stmt.native.run(raw, params)
                else:
                    cursor.execute(stmt.sql, stmt.params(params))
                    # fetchall: the statement is finished, so SQLite holds no read snapshot
                    rows = cursor.fetchall() if fetch else None
                if self.provider == "sqlite" and not fetch:
                    raw.commit()
                if not fetch and self._has_expiry:
                    self._maybe_cleanup(raw, params.get("now"))
            except Exception as e:
                raise self._raw_failure(op, raw, cursor, e) from e
            except BaseException:  # interrupted (KeyboardInterrupt...) mid-statement
                _discard(raw)  # its protocol state is unknown: never reuse it
                raise
            self._keep_hot(raw, cursor)
            return rows

    def _checkout(self, op: str) -> Tuple[Any, Any]:
        """A pooled DBAPI connection for one statement, and its cursor if it has one yet.

        It comes from a small stack of *hot* connections that skip the pool's checkout and
        checkin (with their events and bookkeeping) between calls; one idle for longer than
        :data:`_PING_AFTER` goes back to the pool and a checkout, which pings, replaces it.
        After a failure every hot connection goes back to the pool, which replaces any as old
        as the failed one (see :meth:`_raw_failure`). Give it back with :meth:`_keep_hot`."""
        if self._closed:
            raise BackendError(f"DatabaseCache({self.provider}): {op} failed: the cache is closed")
        if self._forks != _FORKS[0]:
            self._forked()
        try:
            raw, cursor, used = self._hot.pop()
        except IndexError:
            pass
        else:
            if time.monotonic() - used <= _PING_AFTER:
                return raw, cursor
            self._release(raw, cursor)
        try:
            return self._engine.raw_connection(), None
        except self._failures as e:
            raise self._error(op, e) from e

    def _hot_get(self, prefix: bytes, key: str) -> Any:
        """The record stored under ``key`` (or MISSING) on MariaDB through mysqlclient;
        ``prefix`` is the statement up to the key (``_mysql_get``).

        Every memoized hit runs it, so it is :meth:`_raw` for this one statement, run on
        mysqlclient's connection (``query``, ``store_result``, ``fetch_row``: C calls) instead
        of a cursor, whose Python layer (argument conversion, query formatting, result
        handling) costs about as much as the round trip; and the common case of
        :meth:`_checkout` and :meth:`_keep_hot` (a hot connection used less than
        :data:`_PING_AFTER` ago, taken and put back) is done here, where anything else goes to
        them. The key (hex digits) is spliced into the statement as a quoted literal: it is
        checked to be ASCII letters and digits, which need no escaping."""
        text = key.encode("ascii")
        if not text.isalnum():  # never a quote or a backslash
            raise ValueError(f"not a storage key: {key!r}")
        hot = self._hot  # and no lock: a server database's is _NoLock
        try:
            raw, cursor, used = hot.pop()
        except IndexError:
            raw = cursor = None
            used = float("-inf")  # never fast
        now = time.monotonic()
        fast = now - used <= _PING_AFTER and not self._closed and self._forks == _FORKS[0]
        if not fast:
            if raw is not None and self._closed:
                self._release(raw, cursor)
            elif raw is not None:  # for _checkout to take, replace, or leave to the parent
                hot.append((raw, cursor, used))
            raw, cursor = self._checkout("get")
        try:
            conn = raw.dbapi_connection
            conn.query(prefix + text + b"'")
            rows = conn.store_result().fetch_row()
        except Exception as e:
            raise self._raw_failure("get", raw, cursor, e) from e
        except BaseException:  # interrupted (KeyboardInterrupt...) mid-statement
            _discard(raw)  # its protocol state is unknown: never reuse it
            raise
        if fast and len(hot) < self._hot_max and not self._closed:
            hot.append((raw, cursor, now))
        else:
            self._keep_hot(raw, cursor)
        return rows[0][0] if rows else MISSING

    def _keep_hot(self, raw: Any, cursor: Any) -> None:
        """After a statement: keep the connection hot, or return it to the pool if enough are."""
        hot = self._hot
        if len(hot) < self._hot_max and not self._closed:
            hot.append((raw, cursor, time.monotonic()))
        else:
            self._release(raw, cursor)

    def _raw_failure(self, op: str, raw: Any, cursor: Any, e: Exception) -> BackendError:
        """After a statement failed on a raw connection: return it (see _after_failure) and
        every hot connection to the pool, and give the error to raise."""
        self._after_failure(raw, cursor, e)
        self._release(raw, cursor)
        self._drain_hot()
        return self._error(op, e)

    def _forked(self) -> None:
        """In a forked child: forget the parent's connections without touching their
        sockets (the hot ones and the pool's, as SQLAlchemy advises), and open new ones.
        They stay referenced: a driver whose connection object ends its session when it is
        collected (mysqlclient sends COM_QUIT) would otherwise end the parent's sessions."""
        _INHERITED.append((self._hot, self._engine.pool))
        self._hot = []
        self._forks = _FORKS[0]
        self._engine.dispose(close=False)

    def _drain_hot(self) -> None:
        """Return every hot connection to the pool."""
        while True:
            try:
                raw, cursor, _ = self._hot.pop()
            except IndexError:
                return
            self._release(raw, cursor)

    @staticmethod
    def _release(raw: Any, cursor: Any) -> None:
        """Return a connection to the pool (closing its cursor); never raises."""
        try:
            if cursor is not None:
                cursor.close()
        except Exception:
            pass
        try:
            raw.close()
        except Exception:
            pass

    def _after_failure(self, raw: Any, cursor: Any, e: Exception) -> None:
        """After a failed statement on a raw connection: if the connection was lost, drop it
        and every pooled connection as old as it (as SQLAlchemy does for its own connections)."""
        try:
            lost = self._engine.dialect.is_disconnect(e, raw.dbapi_connection, cursor)
        except Exception:
            lost = True
        if lost:
            try:
                self._engine.pool._invalidate(raw, e)
            except Exception:
                raw.invalidate(e)

    # ------------------------------------------------------------------ expiry
    def _expires_at(self, ttl: Any) -> Optional[float]:
        seconds = check_ttl(ttl)
        if seconds is None:
            seconds = self._ttl
        if seconds is None:
            return None
        if not self._has_expiry:
            self._add_expiry_column()
        return time.time() + seconds

    def _maybe_cleanup(self, raw: Any, now: Optional[float]) -> None:
        now = time.time() if now is None else now
        if now < self._next_cleanup or self._raw_cleanup is None:
            return
        self._next_cleanup = now + _CLEANUP_EVERY
        try:
            cursor = raw.cursor()
            cursor.execute(self._raw_cleanup.sql, self._raw_cleanup.params({"now": now}))
            cursor.close()
            if self.provider == "sqlite":
                raw.commit()
        except Exception as e:  # the write itself succeeded; the next cleanup will retry
            logger.warning(
                "cachehaven: DatabaseCache(%s) cleanup of expired rows failed: %s", self.provider, e
            )
            if self.provider == "sqlite":
                raw.rollback()

    def _cleanup_if_due(self) -> None:
        """The occasional DELETE of expired rows, after a write made through SQLAlchemy."""
        now = time.time()
        if now < self._next_cleanup or not self._has_expiry:
            return
        self._next_cleanup = now + _CLEANUP_EVERY

        def cleanup(conn: Any) -> None:
            conn.execute(self._cleanup, {"now": now})
            if self.provider == "sqlite":
                conn.commit()

        try:
            self._run("delete expired rows", cleanup)
        except BackendError as e:  # the write itself succeeded; the next cleanup will retry
            logger.warning("cachehaven: %s", e)

    # ------------------------------------------------------------------ rows <-> entries
    def _storage_key(self, call: Call) -> str:
        return f"{call.digest:040d}" if self._ahvn else call.hexdigest

    def _row(self, call: Call, entry: CacheEntry, ttl: Any) -> Dict[str, Any]:
        """The row to upsert (serialized before anything is written)."""
        expires_at = self._expires_at(ttl)
        key = self._storage_key(call)
        if self._ahvn:
            content: Any = _ahvn.encode_record(entry) if self._json_content else _ahvn.dumps_record(entry)
            row = {"id": key, "content": content}
            if self._has_expiry:
                row["expires_at"] = expires_at
            return row
        assert self._serializer is not None
        data = encode_record(entry, call.key.bytes, expires_at, self._serializer)
        return {"key": key, "func": _func_column(entry.func), "record": data, "expires_at": expires_at}

    def _decode(self, key: str, payload: Any) -> Optional[_Decoded]:
        """A row's entry, canonical key bytes and expiry time from the record (None for
        AgentHeaven rows, whose expiry is only in the column), or None (plus a warning) when
        the row cannot be read."""
        try:
            if self._ahvn:
                if isinstance(payload, (bytes, bytearray, memoryview)):
                    payload = bytes(payload).decode("utf-8")
                obj = json.loads(payload) if isinstance(payload, str) else payload
                if isinstance(obj, dict) and "cachehaven" in obj:  # a cachehaven record as JSON
                    record = record_from_jsonable(obj)
                    return record.entry, record.key, record.expires_at
                return _ahvn.decode_record(obj), None, None
            assert self._serializer is not None
            record = load_record(bytes(payload), self._serializer)
            return record.entry, record.key, record.expires_at
        except Exception as e:  # corrupt, truncated, tampered or foreign: a miss, never a crash
            self._unreadable(key, e)
            return None

    def _unreadable(self, key: str, e: Exception) -> None:
        """Warn (and log) that the row at ``key`` cannot be read; it counts as a miss."""
        message = (
            f"DatabaseCache({self.provider}): unreadable record for key {key} in table "
            f"{self.table!r}, treated as a miss ({type(e).__name__}: {self._scrub(str(e))[:300]})"
        )
        logger.warning("cachehaven: %s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)

    def _entry_for(self, call: Call, key: str, payload: Any) -> Optional[CacheEntry]:
        """The entry in a row fetched for ``call``, if it really is ``call``'s."""
        decoded = self._decode(key, payload)
        if decoded is None:
            return None
        entry, canonical, expires_at = decoded
        if expires_at is not None and expires_at <= time.time():
            return None  # expired (see _build_statements)
        if canonical is not None:
            return entry if canonical == call.key.bytes else None
        if not _ahvn.same_call(entry, call.func, call.inputs):
            return None  # a digest collision or a foreign row: never a wrong value
        return entry

    def _value_for(self, call: Call, key: str, payload: Any) -> Any:
        """The value in a row fetched for ``call`` if it really is ``call``'s, else MISSING."""
        if self._ahvn:
            entry = self._entry_for(call, key, payload)
            return MISSING if entry is None else entry.value
        assert self._serializer is not None
        try:  # MISSING for another call's row under a colliding digest, or an expired one
            return load_current_value(
                payload if type(payload) is bytes else bytes(payload),
                self._serializer,
                call.key.bytes,
                time.time(),
            )
        except Exception as e:  # corrupt, truncated, tampered or foreign: a miss, never a crash
            self._unreadable(key, e)
            return MISSING

    # ------------------------------------------------------------------ storage protocol
    def _lookup_row(self, call: Call) -> Tuple[str, Any]:
        """``call``'s storage key, and the payload of its live row or MISSING (on mysqlclient,
        of its row: the record's own expiry time is checked once it is read)."""
        key = self._storage_key(call)
        if self._mysql_get is not None:  # the record alone: its expiry is checked once read
            return key, self._hot_get(self._mysql_get, key)
        now = time.time()
        rows = self._raw("get", self._raw_get, {"k": key, "now": now}, True)
        if not rows:
            return key, MISSING
        row = rows[0]
        if self._expiry_in_python and row[1] is not None and row[1] <= now:
            return key, MISSING  # expired (see _build_statements)
        return key, row[0]

    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        key, payload = self._lookup_row(call)
        return None if payload is MISSING else self._entry_for(call, key, payload)

    def _fetch_value(self, call: Call) -> Any:
        prefix = self._mysql_get
        if prefix is not None:  # _lookup_row in cachehaven's layout, for every MariaDB hit
            key = call.hexdigest  # its storage key
            payload = self._hot_get(prefix, key)
        else:
            key, payload = self._lookup_row(call)
        return MISSING if payload is MISSING else self._value_for(call, key, payload)

    def _fetch_many(self, calls: Sequence[Call]) -> List[Any]:
        keys = [self._storage_key(c) for c in calls]
        unique = list(dict.fromkeys(keys))
        now = time.time()

        def select(conn: Any) -> Dict[str, Any]:
            found: Dict[str, Any] = {}
            for i in range(0, len(unique), _CHUNK):
                for k, payload in conn.execute(self._sel_many, {"keys": unique[i : i + _CHUNK], "now": now}):
                    found[k] = payload
            return found

        if not unique:
            found = {}
        elif self._raw_get_many is not None:
            found = dict(self._raw("get_many", self._raw_get_many, {"keys": unique, "now": now}, True))
        else:
            found = self._run("get_many", select)
        if not found:
            return [MISSING] * len(calls)
        values: List[Any] = []
        for call, key in zip(calls, keys):
            payload = found.get(key)
            values.append(MISSING if payload is None else self._value_for(call, key, payload))
        return values

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        row = self._row(call, entry, ttl)
        row_now = time.time()
        if self._raw_put is None:  # AgentHeaven JSONB rows go through SQLAlchemy's JSON type

            def write(conn: Any) -> None:
                conn.execute(self._upsert, row)

            self._run("set", write)
            self._cleanup_if_due()
            return
        self._raw("set", self._raw_put, {**row, "now": row_now}, False)

    def _put_many(self, items: Sequence[Tuple[Call, CacheEntry]], ttl: Any = None) -> None:
        if self._raw_put_many is not None:
            self._put_columns(items, ttl)
            return
        rows: Dict[str, Dict[str, Any]] = {}
        for call, entry in items:  # serialize everything first; a later duplicate wins
            row = self._row(call, entry, ttl)
            rows.pop(row[self._keycol.name], None)
            rows[row[self._keycol.name]] = row
        if not rows:
            return
        batch = list(rows.values())
        self._run_transaction("set_many", lambda conn: conn.execute(self._upsert, batch))
        self._cleanup_if_due()

    def _put_columns(self, items: Sequence[Tuple[Call, CacheEntry]], ttl: Any) -> None:
        """The array upsert (PostgreSQL) of entries, serialized before anything is written,
        with one expiry time for the batch; a later duplicate key wins."""
        assert self._serializer is not None
        expires_at = self._expires_at(ttl)
        serializer = self._serializer
        records = [encode_record(entry, call.key.bytes, expires_at, serializer) for call, entry in items]
        keys = [self._storage_key(call) for call, _ in items]
        self._write_arrays(keys, [entry.func for _, entry in items], records, expires_at, False)

    def _put_results(
        self,
        pairs: Sequence[Tuple[Call, Any]],
        metadata: Callable[[], Dict[str, Any]],
        ttl: Any = None,
    ) -> None:
        if self._raw_put_many is None:
            super()._put_results(pairs, metadata, ttl)
            return
        assert self._serializer is not None
        expires_at = self._expires_at(ttl)
        records = encode_results(pairs, metadata(), expires_at, self._serializer)  # before any write
        keys = [self._storage_key(call) for call, _ in pairs]
        # the lookup just missed these rows: insert them, unless an insert conflicted lately
        fresh = time.monotonic() >= self._upsert_until
        self._write_arrays(keys, [call.func for call, _ in pairs], records, expires_at, fresh)

    def _write_arrays(
        self,
        keys: List[str],
        funcs: List[str],
        records: List[bytes],
        expires_at: Optional[float],
        fresh: bool,
    ) -> None:
        """Write rows given as parallel lists (storage key, function identity, record) in one
        statement (PostgreSQL); a later duplicate key wins. With ``fresh`` they are expected
        to be new: a plain INSERT, which costs the server about a third less than the upsert
        (no conflict check and speculative insertion per row); if a row exists after all (an
        expired row not yet cleaned up, another writer), the INSERT fails whole and the
        upsert runs instead, and for the next :data:`_CLEANUP_EVERY` seconds every batch
        upserts directly. Rows go in key order, so concurrent writers of overlapping batches
        wait for each other instead of deadlocking."""
        if not keys:
            return
        if len(set(keys)) == len(keys):
            order = sorted(range(len(keys)), key=keys.__getitem__)
        else:
            last = {key: i for i, key in enumerate(keys)}
            order = sorted(last.values(), key=keys.__getitem__)
        columns = {func: _func_column(func) for func in set(funcs)}
        values = {
            "keys": [keys[i] for i in order],
            "funcs": [columns[funcs[i]] for i in order],
            "records": [records[i] for i in order],
            "expires_at": expires_at,
            "now": time.time(),
            "fresh": fresh,
        }
        assert self._raw_put_many is not None
        if self._raw("set_many", self._raw_put_many, values, False):
            self._upsert_until = time.monotonic() + _CLEANUP_EVERY

    def _delete(self, call: Call) -> bool:
        key = self._storage_key(call)
        now = time.time()

        def delete(conn: Any) -> bool:
            row = conn.execute(self._sel_row, {"k": key}).first()
            if row is None:
                return False
            live = not (self._has_expiry and row[1] is not None and row[1] <= now)
            decoded = self._decode(key, row[0])
            if decoded is not None:
                entry, canonical, _ = decoded
                if canonical is not None and canonical != call.key.bytes:
                    return False  # another call's row under a colliding digest: leave it
                if canonical is None and not _ahvn.same_call(entry, call.func, call.inputs):
                    return False
            else:
                live = False  # an unreadable row is removed but was never a hit
            conn.execute(self._del_one, {"k": key})
            return live

        return bool(self._run_transaction("remove", delete))

    def _entries(self) -> Iterator[CacheEntry]:
        after = ""
        while True:
            params = {"after": after, "now": time.time()}

            def page(conn: Any, params: Dict[str, Any] = params) -> List[Any]:
                return list(conn.execute(self._page, params).all())

            rows = self._run("iterate", page)
            for key, payload in rows:
                decoded = self._decode(key, payload)
                if decoded is not None:
                    yield decoded[0]
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _wipe(self) -> None:
        def wipe(conn: Any) -> None:
            conn.execute(self._wipe_stmt)
            if self.provider == "sqlite":
                conn.commit()

        self._run("clear", wipe)

    def _size(self) -> int:
        return int(
            self._run("len", lambda conn: conn.execute(self._count, {"now": time.time()}).scalar_one())
        )

    def _func_size(self, func: str) -> int:
        if self._ahvn:
            return super()._func_size(func)
        params = {"f": _func_column(func), "now": time.time()}
        return int(self._run("func_size", lambda conn: conn.execute(self._count_func, params).scalar_one()))

    def _func_clear(self, func: str) -> int:
        if self._ahvn:
            return super()._func_clear(func)
        params = {"f": _func_column(func), "now": time.time()}

        def clear(conn: Any) -> int:
            removed = conn.execute(self._del_func_live, params).rowcount
            conn.execute(self._del_func, {"f": params["f"]})  # its expired rows too
            return int(removed)

        return int(self._run_transaction("func_clear", clear))

    # ------------------------------------------------------------------ lifecycle
    @property
    def engine(self) -> Any:
        """The SQLAlchemy ``Engine`` (for events and inspection; credentials hidden in its repr)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with the password hidden (``***``)."""
        return self._safe_url

    @property
    def layout(self) -> str:
        """``"cachehaven"`` or ``"ahvn"`` (AgentHeaven 0.9.2's ``id``/``content`` table)."""
        return "ahvn" if self._ahvn else "cachehaven"

    def close(self) -> None:
        """Dispose of the connection pool. An in-memory SQLite database is gone after this;
        other databases keep their data, and further calls raise BackendError."""
        self._closed = True
        self._drain_hot()
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"DatabaseCache(provider={self.provider!r}, url={self._safe_url!r}, table={self.table!r})"


class _IdlePing:
    """Pessimistic disconnect handling at a fraction of ``pool_pre_ping``'s cost: a pooled
    connection idle for more than :data:`_PING_AFTER` seconds is pinged when checked out, and
    if the ping fails the whole pool is invalidated and a new connection is made (so a
    restarted server is picked up). A connection used moments ago is not pinged, which keeps
    a busy cache at one round trip per operation; if it did die in between, the failed
    statement invalidates the pool in the same way."""

    _KEY = "cachehaven_last_used"

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def install(self) -> None:
        sa.event.listen(self.engine, "connect", self.on_connect)
        sa.event.listen(self.engine, "checkout", self.on_checkout)
        sa.event.listen(self.engine, "checkin", self.on_checkin)

    def on_connect(self, dbapi_connection: Any, record: Any) -> None:
        record.info[self._KEY] = time.monotonic()

    def on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info[self._KEY] = time.monotonic()

    def on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(self._KEY)
        if last is not None and time.monotonic() - last <= _PING_AFTER:
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as e:
            raise sa_exc.InvalidatePoolError(f"ping failed: {type(e).__name__}") from None


class _RawStatement:
    """A statement compiled once for a dialect, run directly on a DBAPI cursor (or, when
    ``native`` is set, below the driver's cursor: see :class:`_PqQuery`)."""

    __slots__ = ("names", "native", "positional", "sql")

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = str(compiled)
        self.positional: bool = bool(compiled.positional)
        self.names: Tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else ()
        self.native: Optional[Union[_PqQuery, _PqGetMany, _PqPutMany]] = None

    @classmethod
    def from_text(cls, sql: str, names: Tuple[str, ...]) -> _RawStatement:
        """A statement written for the driver's named paramstyle, with parameters ``names``."""
        self = cls.__new__(cls)
        self.sql, self.positional, self.names, self.native = sql, False, names, None
        return self

    def params(self, values: Dict[str, Any]) -> Any:
        if self.positional:
            return tuple(values[n] for n in self.names)
        if self.names:  # a text statement: its own parameters only
            return {n: values[n] for n in self.names}
        return values


class _PqPrepared:
    """A statement run on psycopg's libpq connection (``pgconn``) instead of a cursor,
    where psycopg's Python layer (query conversion, adaptation, the prepared-statement
    cache, result loading) costs more than the round trip itself.

    It is prepared once per connection under a fixed name (a server-side prepared
    statement: no parse or plan per call), then each call sends the name and the
    parameters. The wait for the reply is a ``poll`` in Python, so a signal (Ctrl-C)
    interrupts it as it interrupts a cursor; the connection is then discarded. The
    connection is in autocommit mode, so no transaction is left open, whatever the result."""

    __slots__ = ("name", "sql")

    def __init__(self, name: bytes, sql: str) -> None:
        self.name = name
        self.sql = sql.encode("utf-8")

    def execute(self, raw: Any, params: List[Optional[bytes]], formats: Optional[List[int]]) -> Any:
        """The result (binary) of the statement with ``params`` on the pooled connection
        ``raw``, failed or not; raises psycopg's error only if it cannot be prepared."""
        pgconn = raw.dbapi_connection.pgconn
        info = raw.info  # per DBAPI connection: cleared when the connection is replaced
        if self.name not in info:
            self._prepare(raw, pgconn)
            info[self.name] = True
        for attempt in (0, 1):
            pgconn.send_query_prepared(self.name, params, formats, 1)
            result = _pq_wait(pgconn)
            if attempt or result.error_field(_PQ_SQLSTATE) != b"26000":
                break
            self._prepare(raw, pgconn)  # not prepared on this connection after all
        return result

    def _prepare(self, raw: Any, pgconn: Any) -> None:
        pgconn.send_prepare(self.name, self.sql, None)
        result = _pq_wait(pgconn)
        if result.status != _PQ_COMMAND_OK and result.error_field(_PQ_SQLSTATE) != b"42P05":  # exists
            raise _pq_error(raw, result)


class _PqQuery(_PqPrepared):
    """A one-column ``bytea`` query on libpq (the hit's SELECT): parameters ``names`` sent
    as text, the result read in binary (the record's bytes as they are)."""

    __slots__ = ("names",)

    def __init__(self, name: bytes, sql: str, names: Tuple[str, ...]) -> None:
        super().__init__(name, sql)
        self.names = names

    def run(self, raw: Any, values: Dict[str, Any]) -> List[Tuple[Any, ...]]:
        """The rows of the query on the pooled connection ``raw``; raises psycopg's error."""
        result = self.execute(raw, [_pq_text(values[n]) for n in self.names], None)
        if result.status != _PQ_TUPLES_OK:
            raise _pq_error(raw, result)
        return [(result.get_value(i, 0),) for i in range(result.ntuples)]


class _PqGetMany(_PqPrepared):
    """The batch lookup on libpq: ``values["keys"]`` (storage keys) as a binary ``text[]``
    and ``values["now"]``; gives ``(key, record)`` rows."""

    __slots__ = ()

    def run(self, raw: Any, values: Dict[str, Any]) -> List[Tuple[str, bytes]]:
        params = [_pq_text_array(values["keys"]), _pq_float8(values["now"])]
        result = self.execute(raw, params, [1, 1])
        if result.status != _PQ_TUPLES_OK:
            raise _pq_error(raw, result)
        get = result.get_value
        return [(get(i, 0).decode("utf-8"), get(i, 1)) for i in range(result.ntuples)]


class _PqPutMany:
    """The batch write on libpq: the rows' columns ``values["keys"]``, ``["funcs"]``,
    ``["records"]`` as binary arrays and ``values["expires_at"]``; with ``values["fresh"]``
    a plain INSERT first, and the upsert if a row exists after all (PostgreSQL's
    unique_violation: the failed INSERT wrote nothing). Returns whether it fell back."""

    __slots__ = ("insert", "upsert")

    def __init__(self, insert: _PqPrepared, upsert: _PqPrepared) -> None:
        self.insert = insert
        self.upsert = upsert

    def run(self, raw: Any, values: Dict[str, Any]) -> bool:
        params = [
            _pq_text_array(values["keys"]),
            _pq_text_array(values["funcs"]),
            _pq_array(_PQ_BYTEA_OID, values["records"]),
            _pq_float8(values["expires_at"]),
        ]
        formats = [1, 1, 1, 1]
        fell_back = False
        if values["fresh"]:
            result = self.insert.execute(raw, params, formats)
            if result.status == _PQ_COMMAND_OK:
                return False
            if result.error_field(_PQ_SQLSTATE) != b"23505":  # unique_violation
                raise _pq_error(raw, result)
            fell_back = True
        result = self.upsert.execute(raw, params, formats)
        if result.status != _PQ_COMMAND_OK:
            raise _pq_error(raw, result)
        return fell_back


_PQ_TEXT_OID = 25
_PQ_BYTEA_OID = 17
_PQ_ARRAY_HEAD = struct.Struct("!iiIii").pack  # dimensions, has-nulls flag, element type, size, lower bound
_PQ_INT4 = struct.Struct("!i").pack
_PQ_FLOAT8 = struct.Struct("!d").pack


def _pq_array(oid: int, items: Sequence[bytes]) -> bytes:
    """A one-dimensional array of non-null elements (each given in binary) in PostgreSQL's
    binary format: the header, then each element's length and bytes."""
    parts: List[Optional[bytes]] = [None] * (2 * len(items))
    parts[0::2] = map(_PQ_INT4, map(len, items))
    parts[1::2] = items
    return _PQ_ARRAY_HEAD(1, 0, oid, len(items), 1) + b"".join(parts)  # type: ignore[arg-type]


def _pq_text_array(texts: Sequence[str]) -> bytes:
    """A ``text[]`` in binary. ASCII texts all of one length (storage keys, a batch's
    function identity) are written in one pass: the array body is then the texts, each
    after the same length field, as Latin-1 (which is their UTF-8)."""
    lengths = set(map(len, texts))
    if len(lengths) == 1:
        field = _PQ_INT4(lengths.pop()).decode("latin-1")
        body = field + field.join(texts)
        if body.isascii():
            return _PQ_ARRAY_HEAD(1, 0, _PQ_TEXT_OID, len(texts), 1) + body.encode("latin-1")
    return _pq_array(_PQ_TEXT_OID, [t.encode("utf-8") for t in texts])


def _pq_float8(value: Optional[float]) -> Optional[bytes]:
    """A ``double precision`` parameter in binary (None is NULL)."""
    return None if value is None else _PQ_FLOAT8(value)


def _pq_text(value: Any) -> Optional[bytes]:
    """A parameter in PostgreSQL's text format (a float's repr reads back exactly)."""
    if value is None:
        return None
    if type(value) is float:
        return repr(value).encode("ascii")
    return str(value).encode("utf-8")


def _pq_wait(pgconn: Any) -> Any:
    """The result of the command just sent on ``pgconn`` (non-blocking, as psycopg sets it),
    waiting on its socket with ``poll``; later results are drained."""
    while pgconn.flush():
        _pq_poll(pgconn.socket, select.POLLIN | select.POLLOUT)
        pgconn.consume_input()
    while pgconn.is_busy():
        _pq_poll(pgconn.socket, select.POLLIN)
        pgconn.consume_input()
    result = pgconn.get_result()
    if result is None:
        import psycopg

        raise psycopg.OperationalError("the server sent no result")
    while pgconn.get_result() is not None:
        pass
    return result


def _pq_poll(fd: int, events: int) -> None:
    p = select.poll()
    p.register(fd, events)
    p.poll()


def _pq_error(raw: Any, result: Any) -> BaseException:
    """psycopg's exception for a failed result (a DBAPI error, so disconnects are recognised)."""
    import psycopg

    return psycopg.errors.error_from_result(result, raw.dbapi_connection.info.encoding)


def _discard(raw: Any) -> None:
    """Close and forget a pooled connection whose state cannot be trusted; never raises."""
    try:
        raw.invalidate()
    except Exception:
        pass


def _sqlite_file_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never block the writer; several processes can share the file), a busy
    timeout for concurrent writers, and NORMAL sync (safe in WAL mode)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _cachehaven_table(name: str) -> Any:
    """cachehaven's table. The keys and identities compare bytewise (MySQL's ``*_bin``,
    PostgreSQL's ``"C"`` collation: the index never calls the locale's collation), and on
    PostgreSQL the ``expires_at`` index holds only rows that expire (the cleanup is all that
    reads it), so storing an entry without a TTL does not touch it. These are choices for
    tables created from here on; tables created before work as they are."""
    mysql_variants = ("mysql", "mariadb")
    metadata = sa.MetaData()
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "key",
            sa.String(32)
            .with_variant(sa_mysql.VARCHAR(32, charset="ascii", collation="ascii_bin"), *mysql_variants)
            .with_variant(sa_pg.VARCHAR(32, collation="C"), "postgresql"),
            primary_key=True,
        ),
        sa.Column(
            "func",
            sa.String(_FUNC_LEN)
            .with_variant(
                sa_mysql.VARCHAR(_FUNC_LEN, charset="utf8mb4", collation="utf8mb4_bin"), *mysql_variants
            )
            .with_variant(sa_pg.VARCHAR(_FUNC_LEN, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "record", sa.LargeBinary().with_variant(sa_mysql.LONGBLOB(), *mysql_variants), nullable=False
        ),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Index(f"ix_{name}_func", "func"),
        sa.Index(f"ix_{name}_expires_at", "expires_at", postgresql_where=sa.text("expires_at IS NOT NULL")),
        **_MYSQL_TABLE,
    )


def _ahvn_table(name: str, expiry: bool, json_content: Optional[bool] = None) -> Any:
    """AgentHeaven 0.9.2's ``cache_orm``: ``id`` VARCHAR(63) (the md5 digest as 40 decimal
    digits), ``content`` JSON (JSONB on PostgreSQL, text elsewhere); plus our nullable
    ``expires_at`` when TTLs are used."""
    if json_content is None or json_content:
        content: Any = sa.Text().with_variant(sa_pg.JSONB(none_as_null=True), "postgresql")
    else:
        content = sa.Text()
    content = content.with_variant(sa_mysql.LONGTEXT(charset="utf8mb4"), "mysql", "mariadb")
    columns = [
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("content", content, nullable=True),
    ]
    if expiry:
        columns.append(sa.Column("expires_at", sa.Double(), nullable=True))
    return sa.Table(name, sa.MetaData(), *columns, **_MYSQL_TABLE)
