"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.remotes.pacing import Pacer


def postgres_folder(prefix: str) -> Path:
    """A new folder for an embedded Postgres (or a RECONCILER_HOME holding one), outside
    pytest's private temp folder and readable by all: the server runs as an unprivileged user
    when the tests run as root. The caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def ago(minutes: float) -> datetime:
    """An aware UTC time ``minutes`` ago."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


def lead_fields(i: int) -> dict[str, Any]:
    """Realistic Airtable field values of lead number ``i``."""
    return {
        "First Name": f"Ann{i}",
        "Last Name": f"Lee{i}",
        "Email": f"ann{i}@example.com",
        "Company": f"Acme {i}",
        "ICP Score": 50 + (i % 50) + 0.5,
        "Status": "New",
        "SMS Sent Count": i % 4,
        "Booked": i % 2 == 0,
        "SMS Last Sent At": "2026-11-19T08:30:00.250Z",
        "Processing Status": "queued",
    }


def seed_leads(em: AirtableEmulator, count: int, *, minutes_ago: float = 5) -> list[str]:
    """Create ``count`` leads modified ``minutes_ago``; returns their record ids."""
    stamp = ago(minutes_ago)
    return [em.create("Leads", lead_fields(i), modified_at=stamp)["id"] for i in range(count)]


def rows(db: sa.Engine, table: str = "leads", where: str = "true") -> list[dict[str, Any]]:
    """The rows of a table, ordered by id."""
    with db.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table} WHERE {where} ORDER BY id"))
        return [dict(r._mapping) for r in result]


T = TypeVar("T")


def explained(db: sa.Engine, run: Callable[[sa.Connection], T]) -> tuple[T, str]:
    """What ``run`` returns on a connection of ``db``, and the plan Postgres chooses for the
    last statement it sent (``EXPLAIN`` of the same text and parameters)."""
    sent: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    with db.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", keep)
        found = run(conn)
        sa.event.remove(conn, "before_cursor_execute", keep)
        statement, params = sent[-1]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return found, plan


def execute(db: sa.Engine, sql: str, **params: Any) -> None:
    """Run a statement in its own transaction (an application writing)."""
    with db.begin() as conn:
        conn.execute(sa.text(sql), params)


WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = :q"


@contextmanager
def edit_while_writing(db: sa.Engine, statement: str, edit: str) -> Iterator[threading.Thread]:
    """Run ``edit`` from an application's connection as soon as the run is about to send a
    statement starting with ``statement``, and let the run go on once the edit either is done
    or waits for a lock (seen in ``pg_stat_activity``)."""
    editing = threading.Thread(target=execute, args=(db, edit), name="application")

    def before(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if editing.ident is None and sql.startswith(statement):
            editing.start()
            for _ in range(3000):  # at most about 30 s, should the edit neither end nor wait
                with db.connect() as watch:
                    if watch.execute(sa.text(WAITING), {"q": edit}).scalar_one():
                        return
                editing.join(0.01)
                if not editing.is_alive():
                    return
            raise AssertionError("the application's edit neither ended nor waited for a lock")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    try:
        yield editing
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
        if editing.ident is not None:
            editing.join()


def list_requests(em: AirtableEmulator) -> int:
    """Airtable list requests (GET on the table, or POST listRecords)."""
    return sum(
        1
        for r in em.requests
        if (r.method == "GET" and r.path.count("/") == 3) or r.path.endswith("/listRecords")
    )


def progression_fields(i: int) -> dict[str, Any]:
    """Realistic Twenty field values of rep progression number ``i`` (JSON held as text)."""
    return {
        "name": f"Rep {i}",
        "workspaceMemberId": f"member-{i}",
        "totalXp": 1000 + i,
        "currentLevel": 1 + i % 7,
        "closedDeals": i % 11,
        "streakDays": i % 5,
        "currentRank": f"E-{1 + i % 7}",
        "badges": '["starter"]',
        "efficiencyMetrics": '{"calls": 10, "rate": 0.5}',
        "completedModules": '["m1", "m2"]',
        "certifications": "[]",
        "defeatedBosses": '["boss1"]',
        "passedExams": '["e1"]',
        "lastActivityDate": "2026-11-20T09:00:00.000Z",
    }


def remote_progression(twenty: Any, member: str, *, minutes_ago: float, **fields: Any) -> str:
    """A Twenty rep progression with the natural key ``member``, last changed ``minutes_ago``;
    returns its id."""
    values = {**progression_fields(0), "workspaceMemberId": member, **fields}
    return str(twenty.create(values, updated_at=ago(minutes_ago))["id"])


def seed_progressions(em: Any, count: int, *, minutes_ago: float = 5) -> list[str]:
    """Create ``count`` rep progressions updated ``minutes_ago``; returns their ids."""
    stamp = ago(minutes_ago)
    return [em.create(progression_fields(i), updated_at=stamp)["id"] for i in range(count)]


def twenty_writes(em: Any) -> list[Any]:
    """Write requests the Twenty emulator received."""
    return [r for r in em.requests if r.method in ("POST", "PATCH", "DELETE")]


TWENTY_MODEL = "/rest/metadata/objects"


def twenty_reads(em: Any) -> list[Any]:
    """Record read requests the Twenty emulator received (listings and reads by id; not the
    data-model reads a run makes once a day, counted by ``twenty_model_reads``)."""
    return [r for r in em.requests if r.method == "GET" and not r.path.startswith(TWENTY_MODEL)]


def twenty_model_reads(em: Any) -> int:
    """Data-model requests (``GET /rest/metadata/objects``) the Twenty emulator received."""
    return int(em.count("GET", TWENTY_MODEL))


class CountingPacer(Pacer):
    """A pacer that counts the requests it let go and those reported as leaving."""

    def __init__(self) -> None:
        super().__init__(5, 1.0)
        self.let_go = self.left = 0

    def wait(self) -> None:
        self.let_go += 1
        super().wait()

    def sent(self) -> None:
        self.left += 1
        super().sent()


def reset_world(db: sa.Engine, airtable: Any, twenty: Any) -> None:
    """Empty every table the reconciler or the tests write, and reset both emulators."""
    with db.begin() as conn:
        own = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'reconciler' "
                "AND tablename NOT IN ('meta', 'alembic_version')"
            )
        ).scalars()
        tables = ["leads", "rep_progressions", *(f"reconciler.{t}" for t in own)]
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY"))
    airtable.reset()
    twenty.reset()


def install_fault(em: Any, write_method: str, fault: tuple[str, int, Any]) -> tuple[bool, bool]:
    """Queue a fault on an emulator (``fault``: kind, times, and the method it hits, ``"write"``
    for the remote's write method); returns whether (pull, push) get through in a model.

    Bursts (at most 3 failures) are absorbed by the retries; an outage outlasts them: a failed
    pull stops the mapping before its push, a failed push loses only the push.
    """
    kind, times, method = fault
    method = write_method if method == "write" else method
    bursts = {"burst503": 503, "burst429": 429}
    if kind in bursts:
        em.faults.fail(bursts[kind], times=times, method=method)
    elif kind == "drop":
        em.faults.drop(times=times, method=method)
    elif kind == "cut":
        em.faults.cut(times=times, method=method)
    elif kind == "pull_outage":
        em.faults.fail(503, times=10_000, method="GET")
    elif kind == "push_outage":
        em.faults.fail(503, times=10_000, method=write_method)
    return kind != "pull_outage", kind not in ("pull_outage", "push_outage")


# A local table `events` mapped on an Airtable table `Events` (events, dated_events).
def events_table(column: str) -> str:
    """The DDL of a local ``events`` table keyed by an Airtable record id, with a title, the
    given business ``column`` (e.g. ``"day date"``), and the columns the tool needs."""
    return f"""
CREATE TABLE events (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    airtable_record_id text UNIQUE,
    title text,
    {column},
    remote_deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER events_touch_updated_at BEFORE INSERT OR UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION reconciler.touch_updated_at()
"""


def events_config(field: str) -> str:
    """A config mapping the Airtable table ``Events`` on the local ``events`` table
    (:func:`events_table`): its title, and one more field given as its TOML inline table."""
    return f"""
[mappings.events]
remote = "airtable"
table = "Events"
local_table = "events"
key_column = "airtable_record_id"
fields = [
    {{ remote = "Title", column = "title" }},
    {field},
]
"""


def notes_config(*, owner: bool) -> str:
    """The Events mapping of :func:`notes_events`: Note, and with ``owner`` also Owner (both
    ways)."""
    fields = '{ remote = "Note", column = "note" }'
    if owner:
        fields += ',\n    { remote = "Owner", column = "owner", direction = "both" }'
    return events_config(fields)


def notes_events(airtable: AirtableEmulator, db: sa.Engine, folder: Path) -> Path:
    """Airtable's Events with Note and Owner, the local table with both columns, and the config
    file mapping Note only (returned): :func:`notes_config` maps Owner too."""
    remote = {"Note": "singleLineText", "Owner": "singleLineText"}
    remote |= {"lastModifiedTime": "lastModifiedTime"}
    table = events_table("note text, owner text")
    return events(airtable, db, folder, remote, table, notes_config(owner=False))


DATED_EVENTS_TABLE = events_table("day date")
DATED_EVENTS_CONFIG = events_config(
    '{ remote = "Day", column = "day", kind = "date", direction = "both" }'
)


def events(
    airtable: AirtableEmulator,
    db: sa.Engine,
    folder: Path,
    remote: dict[str, Any],
    table: str,
    config: str,
) -> Path:
    """An Airtable table ``Events`` (a title and the ``remote`` fields), the local table
    ``events`` (DDL ``table``, see :func:`events_table`), and the ``config`` file mapping them,
    written in ``folder`` (returned)."""
    airtable.add_table("Events", {"Title": "singleLineText", **remote})
    with db.begin() as conn:
        for statement in table.split(";"):
            conn.exec_driver_sql(statement)
    path = folder / "config.toml"
    path.write_text(config, encoding="utf-8")
    return path


def dated_events(airtable: AirtableEmulator, db: sa.Engine, folder: Path) -> Path:
    """An Airtable table ``Events`` with a date field, the local table ``events`` with a date
    column, and the config file mapping them (returned)."""
    remote = {"Day": "date", "lastModifiedTime": "lastModifiedTime"}
    return events(airtable, db, folder, remote, DATED_EVENTS_TABLE, DATED_EVENTS_CONFIG)
