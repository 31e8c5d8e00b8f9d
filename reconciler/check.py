"""``reconcile check``: verify configuration, credentials, database and remote schemas.

Each check yields a :class:`Check`: a name, whether it passed, what was found, and a hint for a
failure. A failure is either a configuration problem (``CONFIG``: the config file, missing
credentials, a mapped field or column that does not exist) or an unavailability (``UNAVAILABLE``:
the database or a remote unreachable, credentials refused, schema not migrated). The exit code is
2 when any configuration check failed, else 3 when anything else failed, else 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as EnvMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconciler.config import (
    Settings,
    load_mappings,
    load_settings,
    missing_credentials,
    unusable_credentials,
)
from reconciler.engine.window import describe
from reconciler.errors import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ReconcilerError,
    SchemaNotMigrated,
    UsageError,
)
from reconciler.model import Mapping
from reconciler.remotes.base import Finding

CONFIG = "config"
UNAVAILABLE = "unavailable"
CLOCK_WARNING = timedelta(minutes=1)  # a remote clock further off is pointed out


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str = ""
    hint: str = ""
    kind: str = CONFIG  # what a failure stands for: CONFIG or UNAVAILABLE
    warning: bool = False  # passed, but worth a look


def exit_code(checks: list[Check]) -> int:
    """0 when every check passed; 2 when a configuration check failed; else 3."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return EXIT_OK
    return EXIT_USAGE if any(c.kind == CONFIG for c in failed) else EXIT_UNAVAILABLE


def run_checks(
    config_path: Path | None = None, env: EnvMapping[str, str] | None = None
) -> Iterator[Check]:
    """Every check, in order; later checks are left out when what they need failed.

    Args:
        config_path: the mapping config file, if any (validated as the first check).
        env: the environment to read settings from (default: ``os.environ``).

    Yields:
        One Check per line of ``reconcile check``.
    """
    try:
        settings = load_settings(env)
        if config_path is not None:
            settings = load_mappings(settings, config_path)
    except UsageError as exc:
        yield Check("configuration", False, str(exc), "fix the setting or key named here")
        return
    source = str(config_path) if config_path else "built-in mappings"
    names = ", ".join(m.name for m in settings.mappings)
    yield Check("configuration", True, f"{source} parsed ({names})")
    ready = [
        m
        for m in settings.mappings
        if not (missing_credentials(m, settings) or unusable_credentials(m, settings))
    ]
    for mapping in settings.mappings:
        yield credentials(mapping, settings, others_run=bool(ready))
    kept: dict[str, Any] = {}
    yield from database(settings, kept)
    yield from remotes(settings, ready, kept)


def credentials(mapping: Mapping, settings: Settings, *, others_run: bool) -> Check:
    """Whether the environment holds what the mapping's remote needs (never the values).

    A mapping without them is skipped by runs while another one can run (a user of one remote
    leaves the other's variables unset): then it is a warning, not a failure, as in the run's
    report. When no mapping can run, each one lacking them fails, as a run exits 2."""
    name = f"credentials for {mapping.name} ({mapping.remote})"
    missing = missing_credentials(mapping, settings)
    if missing and others_run:
        return Check(
            name,
            True,
            f"not configured (no {', '.join(missing)}): runs skip this mapping",
            f"set {' and '.join(missing)} to sync it (see README, 'Connecting')",
            warning=True,
        )
    if missing:
        return Check(
            name,
            False,
            "missing " + ", ".join(missing),
            f"set {' and '.join(missing)} (see README, 'Connecting')",
        )
    unusable = unusable_credentials(mapping, settings)
    if unusable:
        return Check(name, False, "; ".join(unusable))
    return Check(name, True, "present")


# -- the database ------------------------------------------------------------------------------


def database(settings: Settings, kept: dict[str, Any]) -> Iterator[Check]:
    """The database answers and is migrated; every mapped local table has its columns. Fills
    ``kept`` with what runs kept of each mapping's remote schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from reconciler.engine.run import open_database
    from reconciler.store.database import database_failure
    from reconciler.store.history import remote_state_of
    from reconciler.store.sync import Store

    name = "database reachable and migrated"
    where = "DATABASE_URL" if settings.database_url else f"embedded under {settings.home / 'pg'}"
    try:
        engine = open_database(settings)
    except SchemaNotMigrated as exc:
        yield Check(name, False, str(exc), kind=UNAVAILABLE)  # it says to run migrate
        return
    except ReconcilerError as exc:
        hint = "check DATABASE_URL and that Postgres is running"
        yield Check(name, False, str(exc), hint, UNAVAILABLE)
        return
    except SQLAlchemyError as exc:  # reached, but a statement refused (a privilege missing)
        yield Check(name, False, database_failure(exc), kind=UNAVAILABLE)
        return
    yield Check(name, True, where)
    try:
        with engine.connect() as conn:
            store = Store(conn)
            for mapping in settings.mappings:
                state = remote_state_of(conn, mapping.name)
                yield _local_table(store, mapping, state.unfilled(mapping))
                kept[mapping.name] = state.schema
    except SQLAlchemyError as exc:
        yield Check("database readable", False, database_failure(exc), kind=UNAVAILABLE)
    finally:
        engine.dispose()


def _local_table(store: Any, mapping: Mapping, unfilled: list[str]) -> Check:
    """The mapping's table has its columns, a trigger keeps ``updated_at``, every pulled
    column can hold an empty value, and every mapped column holds values for the rows synced
    so far (``unfilled``: those that do not yet)."""
    name = f"local table {mapping.local_table} ({mapping.name})"
    try:
        store.table(mapping)
    except UsageError as exc:
        from reconciler.store.tables import TableMissing  # loaded with the store already

        hint = (
            "create the table or columns, or run `reconcile migrate` for the built-in tables"
            if isinstance(exc, TableMissing)
            else ""  # the message names its fix
        )
        return Check(name, False, str(exc), hint)
    details = [f"{mapping.key_column} and {len(mapping.fields)} mapped columns"]
    hints = []
    if not store.has_update_trigger(mapping.local_table):
        details.append("no trigger keeps updated_at")
        hints.append(
            "an application's UPDATE that does not set updated_at is never pushed: add the "
            'trigger (README, "Mapping configuration")'
        )
    required = store.unfillable_fields(mapping)
    if required:
        columns = ", ".join(f.column for f in required)
        fields = " or ".join(f.remote for f in required)
        details.append(f"NOT NULL {columns}: a record with {fields} empty fails to pull")
        hints.append(
            f"allow NULL: ALTER TABLE {mapping.local_table} "
            + ", ".join(f"ALTER COLUMN {f.column} DROP NOT NULL" for f in required)
        )
    if unfilled:
        details.append(f"{', '.join(unfilled)} mapped since the last full read")
        hints.append(
            "rows synced before fill in as their records change; "
            f"`reconcile --full --mapping {mapping.name}` fills them in now"
        )
    return Check(name, True, "; ".join(details), "; ".join(hints), warning=bool(hints))


# -- the remotes -------------------------------------------------------------------------------


def remotes(settings: Settings, mappings: list[Mapping], kept: dict[str, Any]) -> Iterator[Check]:
    """Each mapping's remote as the remote itself inspects it: it answers and takes the
    credentials (one line per base and token, or server and key), every mapped field exists
    with a fitting type, and how its clock compares with this host's.

    ``kept`` holds, by mapping name, what runs kept of each remote's schema (to point out what
    changed since, such as a renamed field).
    """
    from reconciler.remotes.factory import build_remote

    ordered = sorted(mappings, key=lambda m: m.remote != "airtable")  # Airtable first, stable
    scopes: dict[str, set[str]] = {}
    findings: list[tuple[Finding, str]] = []
    for mapping in ordered:
        remote = build_remote(mapping, settings)
        try:
            found = list(remote.inspect(kept.get(mapping.name)))
        finally:
            remote.close()
        clock = _clock(mapping, remote.clock.offset, settings, found)
        for finding in [*found, *clock]:
            findings.append((finding, mapping.remote))
            scopes.setdefault(finding.name, set()).add(finding.scope)
    shown: set[Finding] = set()
    for finding, _ in findings:
        if finding in shown:
            continue  # the same base and token, or server and key, already checked
        shown.add(finding)
        several = len(scopes[finding.name]) > 1 and finding.scope
        name = f"{finding.name} ({finding.scope})" if several else finding.name
        kind = UNAVAILABLE if finding.unavailable else CONFIG
        yield Check(name, finding.ok, finding.detail, finding.hint, kind, finding.warning)


def _clock(
    mapping: Mapping, offset: timedelta | None, settings: Settings, found: list[Finding]
) -> list[Finding]:
    """How the remote's clock (its Date header) compares with this host's."""
    if offset is None or any(f.unavailable for f in found):
        return []
    scope = next((f.scope for f in found if f.scope), "")
    remote = mapping.remote.capitalize()
    limit = timedelta(minutes=settings.max_clock_offset_minutes)
    name = f"{mapping.remote} clock"
    detail = describe(offset, remote)
    if abs(offset) > limit:
        hint = (
            "set this host's clock right (NTP): runs refuse a clock further off than "
            f"RECONCILER_MAX_CLOCK_OFFSET_MINUTES ({limit.total_seconds() / 60:.0f})"
        )
        return [Finding(name, False, detail, hint, unavailable=True, scope=scope)]
    if abs(offset) > CLOCK_WARNING:
        detail += f"; runs place their windows on {remote}'s clock"
        return [Finding(name, True, detail, warning=True, scope=scope)]
    return [Finding(name, True, detail, scope=scope)]
