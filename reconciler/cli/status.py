"""``reconcile status``: is the sync healthy? For monitors; reads the database, never a remote."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from reconciler.cli.app import JsonOut, app, open_database
from reconciler.cli.run import LOOKBACK_MAX, ConfigPath, MappingOpt
from reconciler.errors import EXIT_OK, EXIT_PARTIAL, UnavailableError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.config import Settings
    from reconciler.health import Health
    from reconciler.model import Mapping

# Three 15-minute cron runs: a mapping that missed or failed three runs in a row is stale.
DEFAULT_MAX_AGE = 45
# A record or mapping failing in three runs in a row (45 minutes on the 15-minute schedule) is
# past a passing blip (a timeout, a 429, a row being edited), and well before a record is
# dead-lettered (RECONCILER_MAX_ATTEMPTS, 8): a person gets to look while it is still retried.
DEFAULT_MAX_FAILURES = 3

MaxAge = Annotated[
    int,
    typer.Option(
        "--max-age",
        min=1,
        max=LOOKBACK_MAX,
        metavar="MINUTES",
        help="How old a mapping's last successful run may be, in minutes (1 to 5256000, ten "
        "years).",
    ),
]
MaxFailures = Annotated[
    int,
    typer.Option(
        "--max-failures",
        min=1,
        metavar="N",
        help="Failures in a row tolerated: a record that failed more than N times, or a "
        "mapping that failed in more than N runs in a row, is a problem.",
    ),
]


@app.command("status")
def status_command(
    max_age: MaxAge = DEFAULT_MAX_AGE,
    max_failures: MaxFailures = DEFAULT_MAX_FAILURES,
    json_out: JsonOut = False,
    config: ConfigPath = None,
    mapping: MappingOpt = None,
) -> None:
    """Whether the sync is healthy, from the run history alone (no remote is contacted).

    Exits 0 when every configured mapping synced successfully within --max-age minutes, nothing
    is dead-lettered and nothing failed more than --max-failures times in a row; else exits 1
    and prints one line per problem. Exits 2 with nothing to watch (no mapping has synced or
    has its credentials here) or a bad option, and 3 when the database cannot be read or is not
    migrated.
    """
    from datetime import timedelta

    from reconciler.health import assess

    settings, selected = _watched(config, mapping)
    try:
        engine = open_database(settings)
    except UnavailableError as exc:
        if json_out:  # a monitor parsing the document learns why too
            sys.stdout.write(json.dumps({"healthy": False, "error": str(exc)}, indent=2) + "\n")
        raise
    try:
        with engine.connect() as conn:
            health = assess(
                conn, selected, max_age=timedelta(minutes=max_age), max_failures=max_failures
            )
    finally:
        engine.dispose()
    _require_something_watched(health, selected)
    if json_out:
        sys.stdout.write(json.dumps(health.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in health.problems or [ok_line(health)]))
    raise typer.Exit(EXIT_OK if health.healthy else EXIT_PARTIAL)


def _watched(
    config: Path | None, names: list[str] | None
) -> tuple[Settings, list[tuple[Mapping, str | None]]]:
    """The settings, and the mappings to watch, each with its missing credentials (or None)."""
    from reconciler.config import load_mappings, load_settings, missing_credentials

    settings = load_settings()
    if config is not None:
        settings = load_mappings(settings, config)
    known = {m.name: m for m in settings.mappings}
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise UsageError(f"--mapping: unknown mapping {unknown[0]!r} (known: {', '.join(known)})")
    chosen = [known[n] for n in dict.fromkeys(names or ())] or list(settings.mappings)
    return settings, [(m, ", ".join(missing_credentials(m, settings)) or None) for m in chosen]


def _require_something_watched(health: Health, selected: list[tuple[Mapping, str | None]]) -> None:
    """Exit 2 when no mapping is watched: the monitor lacks the runs' environment, and a
    healthy answer would hide it."""
    if any(m.watched for m in health.mappings):
        return
    needed = sorted({v for _, missing in selected for v in (missing or "").split(", ") if v})
    raise UsageError(
        "no mapping to watch: none has synced yet or has its credentials here; "
        f"set {', '.join(needed)} as the runs do (see README, 'Monitoring')"
    )


def ok_line(health: Health) -> str:
    """The one line of a healthy status: each watched mapping's last success."""
    parts = []
    for m in health.mappings:
        age = health.age(m.last_success)
        if m.watched and age is not None:
            missing = f" (not configured here: {m.not_configured})" if m.not_configured else ""
            parts.append(f"{m.mapping.name} synced {age:.0f} min ago{missing}")
        elif not m.watched:
            parts.append(f"{m.mapping.name} not configured ({m.not_configured}), not watched")
    limit = health.max_age.total_seconds() / 60
    return f"healthy: {'; '.join(parts)} (max age {limit:.0f} min)"
