"""A shared hub world: ``rep_progressions`` kept in both Twenty (the built-in mapping) and an
Airtable table "Reps" (mapping ``reps_airtable``, key column ``airtable_rep_id``), with Postgres in
between.

Two ways in:

* the ``hub`` fixture (``Hub``): three reps linked on all three sides, driven through the CLI,
  for deterministic end-to-end tests;
* ``HubWorld``: the same configuration driven in-process, reset between examples, for property
  tests that run the engine hundreds of times (the CLI's per-run setup would dominate them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.config import RunOptions, Settings, load_mappings, load_settings, select_mappings
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.engine.run import Run
from reconciler.model import Mapping
from reconciler.remotes import airtable_http
from reconciler.remotes.factory import build_remote
from reconciler.report import RunReport
from reconciler.store.sync import Store
from tests.helpers import ago, execute, progression_fields, reset_world, rows, twenty_writes

M = "rep_progressions"
AT = "reps_airtable"
HUB_CONFIG = """
[mappings.reps_airtable]
remote = "airtable"
table = "Reps"
local_table = "rep_progressions"
key_column = "airtable_rep_id"
modified_field = "Last Modified"
fields = [
    { remote = "Name", column = "name", direction = "both" },
    { remote = "Workspace Member", column = "workspace_member_id", direction = "both" },
    { remote = "Total XP", column = "total_xp", kind = "number", direction = "both" },
    { remote = "Current Rank", column = "current_rank", direction = "both" },
]
"""
REPS_FIELDS: dict[str, Any] = {
    "Name": "singleLineText",
    "Workspace Member": "singleLineText",
    "Total XP": "number",
    "Current Rank": "singleLineText",
    "Last Modified": "lastModifiedTime",
}


def add_reps_table(airtable: AirtableEmulator) -> None:
    """The Airtable side of the hub (gone again after ``airtable.reset()``)."""
    airtable.add_table("Reps", REPS_FIELDS)


def add_airtable_key(db: sa.Engine) -> None:
    """The hub's second key column, as a user adds it (README, "A table shared by several
    remotes")."""
    execute(db, "ALTER TABLE rep_progressions ADD COLUMN airtable_rep_id text UNIQUE")


def write_config(folder: Path) -> Path:
    """The hub's config file."""
    path = folder / "hub.toml"
    path.write_text(HUB_CONFIG)
    return path


def airtable_writes(airtable: AirtableEmulator) -> int:
    """Write requests Airtable received (its POST listRecords is a read)."""
    return sum(
        1
        for r in airtable.requests
        if r.method in ("POST", "PATCH", "PUT", "DELETE") and not r.path.endswith("/listRecords")
    )


# -- the CLI-driven fixture ------------------------------------------------------------------------


@dataclass
class Hub:
    """Three reps held on three sides, linked."""

    airtable: Any
    twenty: Any
    db: sa.Engine
    cli: Any
    config: str
    links: dict[str, tuple[str, str]]  # member -> (Airtable record id, Twenty id)

    def run(self, *args: str) -> Any:
        """One run through the CLI with the hub's config; it must succeed."""
        result = self.cli("--config", self.config, *args)
        assert result.exit_code == 0, result.output
        return result

    def local(self, member: str) -> dict[str, Any]:
        """The local row of a rep."""
        return next(r for r in rows(self.db, M) if r["workspace_member_id"] == member)

    def at(self, member: str) -> dict[str, Any]:
        """The Airtable fields of a rep."""
        return dict(self.airtable.get("Reps", self.links[member][0])["fields"])

    def tw(self, member: str) -> dict[str, Any]:
        """The Twenty record of a rep."""
        return dict(self.twenty.get(self.links[member][1]))

    def writes(self) -> int:
        """Write requests both remotes received since their logs were last reset."""
        return airtable_writes(self.airtable) + len(twenty_writes(self.twenty))

    def reset_logs(self) -> None:
        """Forget the requests both remotes received."""
        self.airtable.reset_log()
        self.twenty.reset_log()


@pytest.fixture(name="hub")
def hub_fixture(
    airtable: Any, twenty: Any, db: sa.Engine, cli: Any, tmp_path: Path
) -> Iterator[Hub]:
    """Three reps (``wm-0`` … ``wm-2``) in Airtable, Twenty and Postgres, linked by a first
    ``--full`` run; the remotes' request logs are empty when the test starts."""
    add_reps_table(airtable)
    add_airtable_key(db)
    config = write_config(tmp_path)
    links = {}
    for i in range(3):
        member = f"wm-{i}"
        values = {**progression_fields(i), "workspaceMemberId": member}
        tid = str(twenty.create(values, updated_at=ago(60))["id"])
        aid = airtable.create(
            "Reps",
            {
                "Name": values["name"],
                "Workspace Member": member,
                "Total XP": values["totalXp"],
                "Current Rank": values["currentRank"],
            },
            modified_at=ago(60),
        )["id"]
        execute(
            db,
            "INSERT INTO rep_progressions "
            "(name, workspace_member_id, twenty_id, airtable_rep_id, updated_at) "
            "VALUES (:n, :m, :t, :a, :u)",
            n=values["name"],
            m=member,
            t=tid,
            a=aid,
            u=ago(120),  # older than both remotes: their values fill the row at first contact
        )
        links[member] = (aid, tid)
    world = Hub(airtable, twenty, db, cli, str(config), links)
    world.run("--full")  # first contact: both remotes' values merged into the rows
    world.reset_logs()
    yield world


# -- the in-process world --------------------------------------------------------------------------


@dataclass
class HubWorld:
    """The servers, the database and the settings (hub config applied) one test function shares
    across the examples of a property test."""

    airtable: AirtableEmulator
    twenty: TwentyEmulator
    db: sa.Engine
    settings: Settings
    table: sa.Table  # the live rep_progressions, with the hub's second key column

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Short, for hypothesis, which prints the fixtures of every failing example."""
        printer.text("HubWorld(…)")

    def mapping(self, name: str) -> Mapping:
        """A configured mapping by name."""
        return next(m for m in self.settings.mappings if m.name == name)

    def reset(self) -> None:
        """Empty every table the reconciler or the test writes; reset both emulators (and give
        Airtable its Reps table back)."""
        reset_world(self.db, self.airtable, self.twenty)
        add_reps_table(self.airtable)

    def run(self, order: Sequence[str] = (M, AT)) -> RunReport:
        """One reconciliation run over both hub mappings, in-process, in the given mapping
        order (stage 1 of every mapping before stage 2 of any, whatever the order)."""
        options = RunOptions(lookback=20, mappings=tuple(order))
        return Run(
            options, self.settings, select_mappings(options, self.settings), build_remote
        ).execute()

    def writes(self) -> int:
        """Write requests both remotes received since their logs were last reset."""
        return airtable_writes(self.airtable) + len(twenty_writes(self.twenty))

    def reset_logs(self) -> None:
        """Forget the requests both remotes received."""
        self.airtable.reset_log()
        self.twenty.reset_log()


def hub_world(
    airtable: AirtableEmulator,
    twenty: TwentyEmulator,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
) -> HubWorld:
    """The in-process world on the test's emulators and database: hub table and config in
    place, fast retries, the schema reflected once per mapping instead of once per run."""
    from tests.test_convergence import _one_ssl_context

    monkeypatch.setenv("RECONCILER_RETRY_BASE_SECONDS", "0.0001")
    # A 429 holds its base for Airtable's 30 s lockout; the emulator's injected ones lock out
    # nothing, and the retries are what is tested.
    monkeypatch.setattr(airtable_http, "LOCKOUT_SECONDS", 0.0)
    add_reps_table(airtable)
    add_airtable_key(db)
    settings = load_mappings(load_settings(), write_config(folder))
    _reflect_once_per_mapping(monkeypatch)
    _one_ssl_context(monkeypatch)
    table = sa.Table("rep_progressions", sa.MetaData(), autoload_with=db)
    return HubWorld(airtable, twenty, db, settings, table)


def _reflect_once_per_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check each mapping's table against the live schema once per test instead of once per
    run: the schema never changes between examples. Keyed by mapping, not by table: the two
    mappings of a hub see the same table through different columns (only the Airtable one needs
    ``airtable_rep_id``, which the built-in table definition lacks)."""
    checked: dict[str, sa.Table] = {}
    original = Store.table

    def table(self: Store, mapping: Mapping) -> sa.Table:
        if mapping.name not in checked:
            checked[mapping.name] = original(self, mapping)
        return checked[mapping.name]

    monkeypatch.setattr(Store, "table", table)
