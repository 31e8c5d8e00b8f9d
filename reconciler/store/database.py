"""Connecting: ``DATABASE_URL`` or the embedded Postgres, migrations, and the run locks."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from reconciler.config import DATABASE_SCHEMES, embedded_folder
from reconciler.errors import DatabaseError, SchemaNotMigrated
from reconciler.store.schema import SCHEMA
from reconciler.store.sql import refusal, sqlstate, unstorable_text

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import ExceptionContext

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a ``postgresql://`` URL (psycopg 3 driver)."""
    for prefix in DATABASE_SCHEMES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseError("DATABASE_URL must start with postgresql://")


def redact(url: str) -> str:
    """The URL with its password replaced, fit for messages: the one in ``user:password@`` and
    any query parameter naming one (``?password=…``, ``sslpassword=…``)."""
    head, sep, tail = url.partition("://")
    if not sep:
        return url
    rest, query_sep, query = tail.partition("?")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user, colon, _ = creds.partition(":")
        rest = f"{user}:***@{host}" if colon else rest
    if query_sep:
        query = "&".join(_redact_parameter(p) for p in query.split("&"))
    return f"{head}://{rest}{query_sep}{query}"


def _redact_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}=***" if equals and "password" in name.lower() else parameter


def embedded_url(home: Path) -> str:
    """Start (or reuse) the embedded Postgres under ``home/pg``; returns its URL."""
    # pgserver asks platformdirs for a runtime folder when its module is first run, and
    # platformdirs warns when XDG_RUNTIME_DIR is unset (as under cron and systemd): a warning
    # on every run's stderr would break `-q` (silent on success) and mail cron's owner.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise DatabaseError(f"embedded Postgres unavailable: {exc}") from exc
    path = embedded_folder(home)
    _forget_dead_handles(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(path)  # type: ignore[attr-defined]
    except Exception as exc:
        raise DatabaseError(f"could not start the embedded Postgres in {path}: {exc}") from exc
    return str(server.get_uri())


def _forget_dead_handles(pgdata: Path) -> None:
    """Take the processes no longer running off pgserver's list of those using the server.

    pgserver stops the embedded Postgres when the last process using it exits, finding it the
    last by that list (``.handle_pids.json`` in the data folder, ``get_server`` and
    ``PostgresServer._cleanup`` in ``pgserver/postgres_server.py``); a process killed outright
    (a ``timeout``, the OOM killer) never takes itself off, and no later run would then stop
    the server: it would run until the host restarts. A list that cannot be read is left to
    pgserver. (pgserver updates the list without a lock between processes; so does this, through
    its own ``DiskList``.)"""
    import psutil
    from pgserver.utils import DiskList  # the list as pgserver reads and writes it

    handles = DiskList(pgdata / ".handle_pids.json")
    try:
        pids = handles.get()
    except ValueError:
        return
    for pid in pids:
        if isinstance(pid, int) and not psutil.pid_exists(pid):
            handles.get_and_remove(pid)  # reads the list again: a pid added meanwhile stays


def postgres_processes(pgdata: Path) -> list[int]:
    """Pids of Postgres servers running on ``pgdata``."""
    import psutil

    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(str(pgdata) in part for part in cmdline):
            found.append(int(proc.pid))
    return found


def stop_embedded(home: Path) -> list[int]:
    """Stop the demo's embedded Postgres and remove its data; returns any pid still running."""
    pgdata = (home / "pg").resolve()
    if not pgdata.exists():
        return []
    import pgserver

    pgserver.get_server(pgdata).cleanup()  # type: ignore[attr-defined]
    leftover = postgres_processes(pgdata)
    if not leftover:
        shutil.rmtree(pgdata, ignore_errors=True)
    return leftover


def connect(url: str) -> Engine:
    """A SQLAlchemy engine for the URL; checks that the database answers.

    Every session is in UTC (``TimeZone``, passed as a libpq ``options`` setting after any the
    URL or ``PGOPTIONS`` gives): times come back in the zone the tool writes them in, whatever
    zone the server, the database or the role defaults to. In another zone a valid moment may
    be written in a year psycopg cannot read (``9999-12-31T23:59:59Z`` is year 10000 in Tokyo).
    Dates and times at infinity are read as text (``_InfinityAsText``).
    """
    engine = create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        # No server-side prepared statements: a generic plan chosen while a table was nearly
        # empty would otherwise stick for the whole run (sequential scans on big tables).
        connect_args={
            "connect_timeout": 10,
            "application_name": "reconciler",
            "prepare_threshold": None,
            "options": session_options(url),
        },
    )
    event.listen(engine, "connect", _register_loaders)
    event.listen(engine, "handle_error", _unencodable_as_refused)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(f"database unreachable at {redact(url)}: {refusal(exc)}") from exc
    return engine


def _unencodable_as_refused(context: ExceptionContext) -> None:
    """A parameter the driver cannot encode fails its statement as a value the server refuses
    would (``sql.unstorable_text``), not as an error of the tool."""
    if isinstance(context.original_exception, UnicodeEncodeError):
        raise unstorable_text(context.original_exception) from None


def session_options(url: str) -> str:
    """The libpq ``options`` of the tool's sessions: the URL's (else ``PGOPTIONS``), then
    ``TimeZone=UTC``, which wins over any zone set before it. (An ``options`` given to the
    driver replaces the URL's and ``PGOPTIONS``, so those are carried over.)"""
    given = make_url(sqlalchemy_url(url)).query.get("options")
    if given is None:
        given = os.environ.get("PGOPTIONS", "")
    elif not isinstance(given, str):  # the parameter given twice
        given = " ".join(given)
    return f"{given} -c TimeZone=UTC".strip()


class _InfinityAsText(Loader):
    """A date or time type's loader that reads ``infinity`` and ``-infinity`` as those words.

    Postgres' ``date``, ``timestamp`` and ``timestamptz`` hold them, Python's types cannot:
    psycopg's own loaders raise, which fails the whole statement, so one such value in a
    table would stop every read of it. As text, the value reaches the row's conversion, which
    fails that row's record alone (``model.values``). Any other value is psycopg's loader's.
    """

    wrapped: type[Loader]

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._load = self.wrapped(oid, context).load

    def load(self, data: Buffer) -> Any:
        """The value, or the word for a value at infinity."""
        if data[-8:] == b"infinity":
            return bytes(data).decode()
        return self._load(data)


_INFINITE_TYPES = ("date", "timestamp", "timestamptz")


def _register_loaders(dbapi_connection: Any, _record: Any) -> None:
    """Install ``_InfinityAsText`` on a new connection, over the loader psycopg has."""
    adapters = dbapi_connection.adapters
    for name in _INFINITE_TYPES:
        oid = adapters.types[name].oid
        wrapped = adapters.get_loader(oid, Format.TEXT)
        loader = type(f"Infinite{wrapped.__name__}", (_InfinityAsText,), {"wrapped": wrapped})
        adapters.register_loader(oid, loader)


def database_failure(exc: SQLAlchemyError) -> str:
    """One line for a database error that stops a command: a connection lost, or a statement
    refused (for want of a privilege, with what to grant)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return f"database connection lost: {refusal(exc)}"
    said = f"the database refused a statement: {refusal(exc)}"
    if sqlstate(exc) == INSUFFICIENT_PRIVILEGE:
        said += (
            "; the user of DATABASE_URL needs the privileges docs/least-privilege.sql grants "
            "(or run as the database's owner)"
        )
    return said


# Alembic is imported by the functions that migrate, not at the top: a run against a migrated
# DATABASE_URL only compares two revision ids, and loading alembic and every migration script
# for that would cost it a fifth of a run with nothing to do.


# Postgres' SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) for a
# statement the user has no privilege for, and for a table that exists already.
INSUFFICIENT_PRIVILEGE = "42501"
DUPLICATE_TABLE = "42P07"
MIGRATION_HINTS = {
    INSUFFICIENT_PRIVILEGE: "; run `reconcile migrate` as a user that may create schemas and "
    "tables in this database (its owner, or one granted CREATE on it and on schema public)",
    DUPLICATE_TABLE: "; migrate creates the built-in mappings' tables (leads, rep_progressions) "
    "and never takes over an existing table of that name: rename the existing one (a config "
    "file can then map it, see README 'Mapping configuration'), or migrate another database",
}


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> str:
    """Create or upgrade the schema to the newest revision; returns it. Safe to run twice."""
    from alembic import command

    config = _alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except DBAPIError as exc:  # unreachable, or a statement refused (a privilege missing)
        hint = MIGRATION_HINTS.get(sqlstate(exc) or "", "")
        raise DatabaseError(f"migration failed: {refusal(exc)}{hint}") from exc
    return head_revision()


def head_revision() -> str:
    """The newest migration revision."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return head or ""


def declared_head() -> str | None:
    """The newest revision as the migration files declare it, read without alembic: the one
    revision no other file names as its ``down_revision``. None when the files do not form
    one line (a branch, a name alembic computes): ``head_revision`` then decides."""
    links: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = _revision_of(path.read_text(encoding="utf-8"))
        if found is None:
            return None
        links[found[0]] = found[1]
    heads = set(links) - set(links.values())
    return heads.pop() if len(heads) == 1 else None


def _revision_of(source: str) -> tuple[str, str | None] | None:
    """``(revision, down_revision)`` of a migration file, when both are plain literals."""
    values: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    try:
                        values[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        return None
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
        return None
    return revision, down


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None when never migrated."""
    exists = conn.execute(
        text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.alembic_version"}
    ).scalar()
    if exists is None:
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {SCHEMA}.alembic_version")).scalars()
    versions = list(rows)
    return str(versions[0]) if len(versions) == 1 else None


def require_migrated(engine: Engine) -> None:
    """Raise SchemaNotMigrated unless the database is at the newest revision."""
    with engine.connect() as conn:
        current = current_revision(conn)
    if current is None or current != (declared_head() or head_revision()):
        state = "has no reconciler schema" if current is None else f"is at revision {current}"
        raise SchemaNotMigrated(
            f"the database {state}; run `reconcile migrate` to create or upgrade it"
        )


def open_database(url: str | None, home: Path) -> Engine:
    """An engine on ``url``, which must be migrated; or, when None, on the embedded Postgres
    under ``home`` (migrated here: it is the tool's own). Needs nothing of the engine, so the
    read-only commands stay lean."""
    engine = connect(embedded_url(home) if url is None else url)
    try:
        if url is None:
            migrate(engine)
        else:
            require_migrated(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a name."""
    digest = hashlib.sha256(f"reconciler:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def run_lock_name(run_id: str) -> str:
    """The advisory lock a run holds for as long as it is alive (its session's lifetime)."""
    return f"run:{run_id}"


def lock_held(conn: Connection, name: str) -> bool:
    """Whether another session holds the advisory lock of ``name`` (checked without keeping it)."""
    key = lock_key(name)
    if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return False
    return True


@contextmanager
def available_locks(conn: Connection, names: Sequence[str]) -> Iterator[set[str]]:
    """Take every session-level advisory lock of ``names`` that no other session holds;
    yields the names taken, and releases them at the end."""
    taken: dict[str, int] = {}
    try:
        for name in names:
            key = lock_key(name)
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                taken[name] = key
            conn.commit()
        yield set(taken)
    finally:
        _unlock(conn, list(taken.values()))


def _unlock(conn: Connection, keys: list[int]) -> None:
    for key in keys:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        except SQLAlchemyError:
            pass  # the session is gone, and its locks with it
