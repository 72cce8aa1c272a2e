"""The throwaway-server tooling (tests/servers.py): when it skips or fails, and that each real
server starts, authenticates, keeps its data across stop()/start() and kill()/start(), and hands
out fresh, separate databases."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Type

import pytest

import servers
from servers import MysqlServer, PostgresServer, RedisServer, Server

KINDS = [PostgresServer, MysqlServer, RedisServer]
#: The binary whose absence each kind reports first.
FIRST_BINARY = {PostgresServer: "initdb", MysqlServer: "mariadbd", RedisServer: "redis-server"}
DRIVER = {PostgresServer: "psycopg", MysqlServer: "pymysql", RedisServer: "redis"}
PIP_NAME = {PostgresServer: "psycopg[binary]", MysqlServer: "pymysql", RedisServer: "redis"}


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A world-readable directory that servers' temporary directories go into.

    It is readable by the postgres and mysql accounts (pytest's tmp_path is not), and lets a
    test check that a failed launch leaves no directory behind.
    """
    d = Path(tempfile.mkdtemp(prefix="cachehaven-servers-test-"))
    d.chmod(0o755)
    (d / "tmp").mkdir()
    (d / "tmp").chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(d / "tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _set_required(monkeypatch: pytest.MonkeyPatch, required: bool) -> Type[BaseException]:
    """Set or clear CACHEHAVEN_REQUIRE_SERVERS; return the outcome a launch failure must raise."""
    if required:
        monkeypatch.setenv(servers.REQUIRE_ENV, "1")
        return pytest.fail.Exception
    monkeypatch.delenv(servers.REQUIRE_ENV, raising=False)
    return pytest.skip.Exception


@pytest.mark.parametrize("required", [False, True], ids=["skips", "fails-when-required"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_missing_binary_names_it_and_the_package(
    kind: Type[Server], required: bool, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _set_required(monkeypatch, required)
    monkeypatch.setattr(servers, "search_dirs", lambda _kind: [str(scratch / "nonexistent")])
    with pytest.raises(outcome) as info:
        servers.launch(kind)
    message = str(info.value)
    assert FIRST_BINARY[kind] in message
    assert f"apt-get install {kind.package}" in message
    assert list((scratch / "tmp").iterdir()) == []


@pytest.mark.parametrize("required", [False, True], ids=["skips", "fails-when-required"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_server_that_cannot_start_reports_its_output_and_cleans_up(
    kind: Type[Server], required: bool, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(DRIVER[kind])
    outcome = _set_required(monkeypatch, required)
    fake_bin = scratch / "bin"
    fake_bin.mkdir()
    for name in ("initdb", "postgres", "mariadb-install-db", "mariadbd", "redis-server"):
        script = fake_bin / name
        script.write_text(f'#!/bin/sh\necho "{name}: FATAL: could not map shared memory" >&2\nexit 3\n')
        script.chmod(0o755)
    monkeypatch.setattr(servers, "search_dirs", lambda _kind: [str(fake_bin)])
    with pytest.raises(outcome) as info:
        servers.launch(kind)
    message = str(info.value)
    assert "exit code 3" in message or "exited with code 3" in message
    assert "could not map shared memory" in message
    assert list((scratch / "tmp").iterdir()) == []


@pytest.mark.parametrize("required", [False, True], ids=["skips", "fails-when-required"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_missing_driver_names_the_pip_package(
    kind: Type[Server], required: bool, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _set_required(monkeypatch, required)
    monkeypatch.setattr(servers, "search_dirs", lambda _kind: [str(scratch)])
    for name in ("initdb", "postgres", "mariadb-install-db", "mariadbd", "redis-server"):
        (scratch / name).write_text("#!/bin/sh\nexit 0\n")
        (scratch / name).chmod(0o755)
    monkeypatch.setitem(sys.modules, DRIVER[kind], None)  # makes `import <driver>` raise ImportError
    with pytest.raises(outcome) as info:
        servers.launch(kind)
    assert f"pip install '{PIP_NAME[kind]}'" in str(info.value)


# --- the real servers ------------------------------------------------------------------------


def _redis_client(url: str) -> Any:
    """A redis-py client for ``url`` that fails at once on a refused connection (no retries)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=10, retry=Retry(NoBackoff(), 0))


def _write(url: str, value: str) -> None:
    """Store ``value`` under one key in the database at ``url``."""
    if url.startswith("redis"):
        client = _redis_client(url)
        try:
            client.set("probe", value)
        finally:
            client.close()
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE IF NOT EXISTS probe (k VARCHAR(20) PRIMARY KEY, v VARCHAR(50))")
            )
            conn.execute(sa.text("DELETE FROM probe"))
            conn.execute(sa.text("INSERT INTO probe (k, v) VALUES ('probe', :v)"), {"v": value})
    finally:
        engine.dispose()


def _read(url: str) -> Optional[str]:
    """The value :func:`_write` stored at ``url``, or None if the database has none."""
    if url.startswith("redis"):
        client = _redis_client(url)
        try:
            raw = client.get("probe")
        finally:
            client.close()
        return None if raw is None else raw.decode()
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("probe"):
                return None
            return conn.execute(sa.text("SELECT v FROM probe WHERE k = 'probe'")).scalar()
    finally:
        engine.dispose()


def _connection_errors() -> Tuple[Type[BaseException], ...]:
    errors: Tuple[Type[BaseException], ...] = ()
    try:
        import sqlalchemy.exc

        errors += (sqlalchemy.exc.OperationalError,)
    except ImportError:
        pass
    try:
        import redis.exceptions

        errors += (redis.exceptions.ConnectionError,)
    except ImportError:
        pass
    return errors


@pytest.fixture(params=["postgres", "mysql", "redis"])
def server_and_url(request: pytest.FixtureRequest) -> Tuple[Server, str]:
    """Each session server with the URL of a fresh database on it (the per-test fixture)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    server: Server = request.getfixturevalue(f"{request.param}_server")
    return server, url


def test_server_accepts_its_credentials_and_rejects_a_wrong_password(
    server_and_url: Tuple[Server, str],
) -> None:
    server, url = server_and_url
    assert server.is_running()
    assert server.host == "127.0.0.1" and f"@127.0.0.1:{server.port}/" in server.url
    _write(server.url, "default database")
    assert _read(server.url) == "default database"
    assert server.password in url and server.password not in repr(server)
    with pytest.raises(_connection_errors()):
        _read(url.replace(server.password, "wrong-password"))


def test_url_scheme_matches_the_driver(
    postgres_server: PostgresServer, mysql_server: MysqlServer, redis_server: RedisServer
) -> None:
    assert postgres_server.url == (
        f"postgresql+psycopg://cachehaven:{postgres_server.password}@127.0.0.1:{postgres_server.port}/cachehaven"
    )
    assert mysql_server.url == (
        f"mysql+pymysql://cachehaven:{mysql_server.password}@127.0.0.1:{mysql_server.port}/cachehaven"
    )
    assert redis_server.url == f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0"


@pytest.mark.parametrize("halt", ["stop", "kill"])
def test_restart_keeps_port_and_data(server_and_url: Tuple[Server, str], halt: str) -> None:
    server, url = server_and_url
    _write(url, "survives")
    port = server.port
    getattr(server, halt)()
    assert not server.is_running()
    with pytest.raises(_connection_errors()):
        _read(url)
    server.start()
    assert server.is_running()
    assert server.port == port
    assert _read(url) == "survives"


def test_fresh_databases_are_empty_and_separate(server_and_url: Tuple[Server, str]) -> None:
    server, url = server_and_url
    assert _read(url) is None
    _write(url, "first")
    other = server.new_database()
    other_url = server.url_for(other)
    assert other_url != url
    assert _read(other_url) is None
    _write(other_url, "second")
    assert _read(url) == "first"
    server.release_database(other)
    again = server.new_database()  # PostgreSQL hands the emptied database out again
    assert _read(server.url_for(again)) is None
    assert _read(url) == "first"
    server.release_database(again)


def test_released_postgres_database_loses_its_schemas_and_connections(
    postgres_server: PostgresServer,
) -> None:
    import sqlalchemy as sa

    name = postgres_server.new_database()
    engine = sa.create_engine(postgres_server.url_for(name))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA extra"))
            conn.execute(sa.text("CREATE TABLE extra.t (x INT)"))
            conn.execute(sa.text("CREATE SEQUENCE public.s"))
        postgres_server.release_database(name)  # while the engine still holds a pooled connection
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert postgres_server.new_database() == name
        with engine.connect() as conn:
            schemas = conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg%' ORDER BY 1")
            ).scalars()
            assert list(schemas) == ["information_schema", "public"]
            assert conn.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname = 's'")).scalar() == 0
            conn.execute(sa.text("CREATE TABLE public.t (x INT)"))  # public is usable again
    finally:
        engine.dispose()
        postgres_server.release_database(name)


def test_new_database_restarts_a_stopped_server(server_and_url: Tuple[Server, str]) -> None:
    server, _url = server_and_url
    server.stop()
    name = server.new_database()
    assert server.is_running()
    assert _read(server.url_for(name)) is None
    server.release_database(name)


def test_cleanup_stops_the_server_and_removes_its_directory(redis_server: RedisServer) -> None:
    # redis_server proves the binary is there; this test starts and cleans up a second one.
    extra = servers.launch(RedisServer)
    base_dir = extra.base_dir
    assert base_dir is not None and base_dir.is_dir()
    assert extra.port != redis_server.port
    url = extra.url
    extra.cleanup()
    assert not extra.is_running()
    assert not base_dir.exists()
    with pytest.raises(_connection_errors()):
        _read(url)
    extra.cleanup()  # a second cleanup is harmless
