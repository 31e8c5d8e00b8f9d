"""The demo: both emulators, an embedded Postgres, sample data, two runs with edits in between.

Everything runs in this process: the emulators serve real HTTP on ephemeral loopback ports and the
engine talks to them exactly as it talks to Airtable and Twenty. Postgres is a hub: besides the
built-in mappings, a config file written into the demo's folder maps Airtable's Reps table on
``rep_progressions`` too. The first run is a full read on an adopter's data (the same reps already
in Twenty, in Postgres and partly in Airtable's Reps, none linked: first contact links them by
``workspace_member_id``); then each side is edited on purpose (remote edits, portal edits, a
conflict won by each side, an array edited on both sides, a rep renamed in Airtable) and a second
run, the usual ``--lookback 20`` cron run, reconciles them. Nothing is left running: the emulators
stop, and so does the embedded Postgres.
"""

from __future__ import annotations

import json
import random
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.config import RunOptions, Secret, Settings, load_mappings, usable_folder
from reconciler.demo_data import (
    ACADEMY_INSERT,
    CLAIMED,
    CLAIMER,
    HUB_CONFIG,
    IN_AIRTABLE,
    LOCAL_NEWER,
    REMOTE_NEWER,
    RENAMED,
    REPS_FIELDS,
    REPS_TABLE,
    XP_BONUS,
    XP_CORRECTED,
    academy_row,
    airtable_rep,
    lead_fields,
    local_progressions,
    progression_fields,
)
from reconciler.demo_stories import Story, first_contact, tell
from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.engine.context import Progress
from reconciler.model import Mapping
from reconciler.remotes.base import Remote
from reconciler.remotes.factory import build_remote
from reconciler.remotes.pacing import PacerPool
from reconciler.store.database import stop_embedded

LEADS = 300
PROGRESSIONS = 40
LATENCY = 0.003  # seconds per request: a loopback server with a little of a real API's delay
Say = Callable[[str], None]
HUB_FILE = "hub.toml"


@dataclass
class RunResult:
    """One run of the demo: its report and where the report file is."""

    label: str
    report: dict[str, Any]
    path: Path
    exit_code: int


@dataclass
class DemoResult:
    """What the demo did."""

    home: Path
    runs: list[RunResult] = field(default_factory=list)
    first_contact: list[Story] = field(default_factory=list)  # checked right after the first run
    stories: list[Story] = field(default_factory=list)  # checked after the second run
    leftover_postgres: list[int] = field(default_factory=list)

    @property
    def config(self) -> Path:
        """The config file the runs were given (the hub mapping)."""
        return self.home / HUB_FILE

    @property
    def ok(self) -> bool:
        """Every run exited 0, every story ended as expected, nothing was left running."""
        return (
            len(self.runs) == 2
            and all(r.exit_code == 0 for r in self.runs)
            and all(s.ok for s in [*self.first_contact, *self.stories])
            and not self.leftover_postgres
        )


def demo_home(reconciler_home: str | None) -> Path:
    """A fresh folder for the demo: under ``RECONCILER_HOME`` when set, else a temporary one.

    A folder of its own, so the demo never touches the embedded database of real runs.
    """
    base = Path(reconciler_home) if reconciler_home else Path(tempfile.gettempdir())
    usable_folder(base, "RECONCILER_HOME")
    home = Path(tempfile.mkdtemp(prefix="reconcile-demo-", dir=base))
    home.chmod(0o755)  # the embedded Postgres may run as another user
    return home


def demo_settings(home: Path, airtable: AirtableEmulator, twenty: TwentyEmulator) -> Settings:
    """Settings pointed at the emulators, with an embedded Postgres under ``home``."""
    return Settings(
        home=home,
        database_url=None,
        airtable_token=Secret(airtable.token),
        airtable_base_id=airtable.base_id,
        airtable_api_url=airtable.url,
        airtable_rate=5.0,
        twenty_api_key=Secret(twenty.token),
        twenty_api_url=twenty.url,
        twenty_rate=100.0,
    )


@contextmanager
def emulators() -> Iterator[tuple[AirtableEmulator, TwentyEmulator]]:
    """Both emulators, running on ephemeral ports, with their real rate limits."""
    airtable = AirtableEmulator(
        "demo-airtable-token", base_id="appDEMOBASE000001", rate_limit=5, latency=LATENCY
    )
    twenty = TwentyEmulator("demo-twenty-key", rate_per_minute=100, latency=LATENCY)
    airtable.start()
    try:
        twenty.start()
        try:
            yield airtable, twenty
        finally:
            twenty.stop()
    finally:
        airtable.stop()


def run_demo(
    reconciler_home: str | None, *, say: Say, on_progress: Progress | None = None
) -> DemoResult:
    """Run the whole demo and return what happened; never leaves a server running.

    Args:
        reconciler_home: ``RECONCILER_HOME`` if set; the demo makes a fresh folder inside it (or
            in the temporary directory), so it never touches the database of real runs.
        say: called with a short line as each step starts.
        on_progress: the engine's progress callback, for progress bars.
    """
    result = DemoResult(demo_home(reconciler_home))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        try:
            with emulators() as (airtable, twenty):
                demo = Demo(demo_settings(result.home, airtable, twenty), airtable, twenty)
                demo.play(result, say, on_progress)
        finally:
            result.leftover_postgres = stop_embedded(result.home)
    return result


class Demo:
    """The demo's moves: seed, run, edit, run, and the stories of how the edits ended."""

    def __init__(
        self, settings: Settings, airtable: AirtableEmulator, twenty: TwentyEmulator
    ) -> None:
        from reconciler.engine.run import open_database

        self.settings = settings
        self.airtable = airtable
        self.twenty = twenty
        self.db = open_database(settings)
        # The demo's runs follow each other within a second, as one client of each remote: they
        # share one request budget per base, where separate `reconcile` processes would be
        # minutes apart (two runs each starting with a full budget could trip Airtable's 30 s
        # lockout).
        self.pacers = PacerPool()
        self.leads: list[str] = []
        self.progressions: list[str] = []  # Twenty ids, in seeding order
        self.reps: dict[int, str] = {}  # index in progressions -> Airtable Reps record id
        self.expect: dict[str, Any] = {}

    def play(self, result: DemoResult, say: Say, on_progress: Progress | None) -> None:
        """Seed, run fully, edit all three sides, run again, and tell the stories."""
        try:
            self.hub(result.config)
            say(
                f"hub: a config file ({HUB_FILE}, in the demo's folder) maps Airtable's "
                f"{REPS_TABLE} table on rep_progressions too"
            )
            self.seed()
            new = len(local_progressions())
            say(
                f"seeding: {LEADS} leads in Airtable; {PROGRESSIONS} reps in Twenty, the same "
                f"{PROGRESSIONS} in Postgres (none linked) and {len(IN_AIRTABLE)} of them in "
                f"Airtable's {REPS_TABLE}; {new} new hires only in Postgres"
            )
            say("first run: a full read, as on the first day (first contact)")
            result.runs.append(
                self.run("first run (reconcile --full --config hub.toml)", True, on_progress)
            )
            result.first_contact = first_contact(self, result.runs[0].report)
            say(
                "editing: Airtable, Twenty and Postgres, with two conflicts, an array union and "
                "edits across the hub"
            )
            self.edit()
            say("second run: the usual cron run (--lookback 20)")
            result.runs.append(
                self.run(
                    "second run (reconcile --lookback 20 --config hub.toml)", False, on_progress
                )
            )
            result.stories = tell(self, result.runs[1].report)
        finally:
            self.db.dispose()

    def hub(self, config: Path) -> None:
        """Airtable's Reps table, its key column in Postgres, and the config file mapping them,
        each made as a user would."""
        self.airtable.add_table(REPS_TABLE, REPS_FIELDS)
        self.sql("ALTER TABLE rep_progressions ADD COLUMN airtable_rep_id text UNIQUE")
        config.write_text(HUB_CONFIG)
        self.settings = load_mappings(self.settings, config)

    # -- seeding and running ---------------------------------------------------------------------

    def seed(self) -> None:
        """An adopter's data: leads in Airtable; the same reps in Twenty (two hours old, one
        corrected an hour ago), in Postgres (three hours old, not linked) and partly in
        Airtable's Reps (two hours old); and a few new hires only in Postgres."""
        rng = random.Random(20261120)
        now = datetime.now(UTC)
        earlier, academy = now - timedelta(hours=2), now - timedelta(hours=3)
        self.leads = [
            self.airtable.create("Leads", lead_fields(rng, i), modified_at=earlier)["id"]
            for i in range(LEADS)
        ]
        reps = [progression_fields(rng, i) for i in range(PROGRESSIONS)]
        self.progressions = [self.twenty.create(f, updated_at=earlier)["id"] for f in reps]
        for i in IN_AIRTABLE:
            self.reps[i] = self.airtable.create(
                REPS_TABLE, airtable_rep(reps[i]), modified_at=earlier
            )["id"]
        with self.db.begin() as conn:
            conn.execute(sa.text(ACADEMY_INSERT), [academy_row(f) | {"at": academy} for f in reps])
            conn.execute(
                sa.text(
                    "INSERT INTO rep_progressions (name, workspace_member_id, total_xp, "
                    "current_level, current_rank, completed_modules, badges) VALUES (:name, "
                    ":member, :xp, :level, :rank, CAST(:modules AS jsonb), CAST(:badges AS jsonb))"
                ),
                local_progressions(),
            )
        old = reps[XP_CORRECTED]["totalXp"]
        self.expect["xp"] = (old, old + XP_BONUS)
        self.twenty.update(
            self.progressions[XP_CORRECTED],
            {"totalXp": old + XP_BONUS},
            updated_at=now - timedelta(hours=1),
        )

    def run(self, label: str, full: bool, on_progress: Progress | None) -> RunResult:
        """One reconciliation through the engine; the report is written like a CLI run's."""
        from reconciler.config import select_mappings
        from reconciler.engine.run import Run

        options = RunOptions(lookback=20, full=full)
        selected = select_mappings(options, self.settings)
        report = Run(
            options, self.settings, selected, self.remote, on_progress=on_progress
        ).execute()
        path = self.settings.home / "reports" / f"{report.run_id}.json"
        report.write(path)
        return RunResult(label, report.to_dict(), path, report.exit_code)

    def remote(
        self, mapping: Mapping, settings: Settings, *, pacers: PacerPool | None = None
    ) -> Remote:
        """The engine's remote factory, with the demo's request budgets instead of the run's."""
        return build_remote(mapping, settings, pacers=self.pacers)

    # -- the edits between the runs --------------------------------------------------------------

    def sql(self, statement: str, **params: Any) -> Any:
        """Run one statement as an application would (its own transaction)."""
        with self.db.begin() as conn:
            return conn.execute(sa.text(statement), params)

    def edit(self) -> None:
        """Edit each side on purpose; remember what each story expects."""
        now = datetime.now(UTC)
        self.airtable.update("Leads", self.leads[0], {"Status": "Qualified", "ICP Score": 92.5})
        claimed = [self.leads[i] for i in CLAIMED]
        self.sql(
            "UPDATE leads SET claimed_by = :who, claimed_at = now(), "
            "processing_status = 'claimed' WHERE airtable_record_id = ANY(:ids)",
            who=CLAIMER,
            ids=claimed,
        )
        self.conflicting_notes(1, LOCAL_NEWER, now - timedelta(minutes=2), "now()")
        self.conflicting_notes(2, REMOTE_NEWER, now, "now() - interval '2 minutes'")
        self.edit_progressions(now)
        name = self.progression(self.progressions[RENAMED])[0]["name"]
        self.expect["renamed"] = (name, f"{name}-Okafor")
        self.airtable.update(REPS_TABLE, self.reps[RENAMED], {"Name": f"{name}-Okafor"})

    def conflicting_notes(
        self, index: int, notes: tuple[str, str], remote_at: datetime, local_at: str
    ) -> None:
        """Edit a lead's Notes in Airtable at ``remote_at`` and in Postgres at ``local_at``."""
        remote_note, local_note = notes
        self.airtable.update(
            "Leads", self.leads[index], {"Notes": remote_note}, modified_at=remote_at
        )
        self.sql(
            f"UPDATE leads SET notes = :n, updated_at = {local_at} WHERE airtable_record_id = :id",
            n=local_note,
            id=self.leads[index],
        )

    def edit_progressions(self, now: datetime) -> None:
        """A Twenty edit, a local edit, and one array edited on both sides."""
        first, second = self.progressions[0], self.progressions[1]
        before = json.loads(self.twenty.get(first)["completedModules"])  # type: ignore[index]
        self.expect["union"] = [*before, "negotiation", "cold-calling"]
        self.twenty.update(
            first,
            {"completedModules": json.dumps([*before, "negotiation"])},
            updated_at=now - timedelta(minutes=1),
        )
        self.sql(
            "UPDATE rep_progressions SET completed_modules = CAST(:m AS jsonb) "
            "WHERE twenty_id = :id",
            m=json.dumps([*before, "cold-calling"]),
            id=first,
        )
        self.twenty.update(second, {"totalXp": 4200, "currentRank": "E-5"})
        self.sql("UPDATE rep_progressions SET streak_days = 12 WHERE twenty_id = :id", id=second)

    # -- how it ended ----------------------------------------------------------------------------

    def lead(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """A lead's local row and its Airtable fields."""
        rid = self.leads[index]
        row = self.sql("SELECT * FROM leads WHERE airtable_record_id = :id", id=rid).mappings()
        remote = self.airtable.get("Leads", rid) or {"fields": {}}
        return dict(row.one()), dict(remote["fields"])

    def progression(self, twenty_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A rep progression's local row and its Twenty record."""
        row = self.sql("SELECT * FROM rep_progressions WHERE twenty_id = :id", id=twenty_id)
        return dict(row.mappings().one()), self.twenty.get(twenty_id) or {}

    def rep(self, index: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """A rep held on all three sides: its local row, Twenty record and Airtable Reps fields."""
        local, twenty = self.progression(self.progressions[index])
        airtable = self.airtable.get(REPS_TABLE, self.reps[index]) or {"fields": {}}
        return local, twenty, dict(airtable["fields"])

    def updated_in(self, report: dict[str, Any], mapping: str, stage: str, remote_id: str) -> bool:
        """Whether the change log says the run of ``report`` updated this record in this
        mapping's stage (pull: the local row from the record; push: the record)."""
        found = self.sql(
            "SELECT 1 FROM reconciler.change_log WHERE run_id = :run AND mapping = :mapping "
            "AND stage = :stage AND remote_id = :rid AND action = 'updated'",
            run=report["run_id"],
            mapping=mapping,
            stage=stage,
            rid=remote_id,
        )
        return found.first() is not None
