"""Connecting: ``DATABASE_URL`` or the embedded Postgres, migrations, and the run locks."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from reconciler.errors import DatabaseError, SchemaNotMigrated
from reconciler.store.schema import SCHEMA

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a ``postgresql://`` URL (psycopg 3 driver)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseError("DATABASE_URL must start with postgresql://")


def redact(url: str) -> str:
    """The URL with its password replaced, fit for messages."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    creds, _, host = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in creds else url


def embedded_url(home: Path) -> str:
    """Start (or reuse) the embedded Postgres under ``home/pg``; returns its URL."""
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DatabaseError(f"embedded Postgres unavailable: {exc}") from exc
    path = home / "pg"
    path.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on servers
            warnings.simplefilter("ignore")
            server = pgserver.get_server(path)  # type: ignore[attr-defined]
    except Exception as exc:
        raise DatabaseError(f"could not start the embedded Postgres in {path}: {exc}") from exc
    return str(server.get_uri())


def connect(url: str) -> Engine:
    """A SQLAlchemy engine for the URL; checks that the database answers."""
    engine = create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        # No server-side prepared statements: a generic plan chosen while a table was nearly
        # empty would otherwise stick for the whole run (sequential scans on big tables).
        connect_args={
            "connect_timeout": 10,
            "application_name": "reconciler",
            "prepare_threshold": None,
        },
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(f"database unreachable at {redact(url)}: {_reason(exc)}") from exc
    return engine


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> str:
    """Create or upgrade the schema to the newest revision; returns it. Safe to run twice."""
    config = _alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise DatabaseError(f"migration failed: {_reason(exc)}") from exc
    return head_revision()


def head_revision() -> str:
    """The newest migration revision."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return head or ""


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None when never migrated."""
    exists = conn.execute(
        text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.alembic_version"}
    ).scalar()
    if exists is None:
        return None
    context = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
    return context.get_current_revision()


def require_migrated(engine: Engine) -> None:
    """Raise SchemaNotMigrated unless the database is at the newest revision."""
    with engine.connect() as conn:
        current = current_revision(conn)
    if current != head_revision():
        state = "has no reconciler schema" if current is None else f"is at revision {current}"
        raise SchemaNotMigrated(
            f"the database {state}; run `reconcile migrate` to create or upgrade it"
        )


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
def advisory_locks(conn: Connection, names: Sequence[str]) -> Iterator[bool]:
    """Try to take one session-level advisory lock per name; yields whether all were taken."""
    taken: list[int] = []
    try:
        for name in names:
            key = lock_key(name)
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
            if not got:
                break
            taken.append(key)
        yield len(taken) == len(names)
    finally:
        for key in taken:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except SQLAlchemyError:
                pass  # the session is gone, and its locks with it
