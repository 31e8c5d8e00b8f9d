"""`reconcile demo` as a real process: two runs, the stories end as told, nothing left running;
and once in this process, to check the data on every side independently of the stories."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reconciler.demo
from reconciler.demo import Demo, DemoResult, run_demo
from reconciler.demo_data import HUB_CONFIG
from reconciler.model import read_mappings
from reconciler.store.database import postgres_processes
from tests.helpers import postgres_folder
from tests.processes import ENTRY, ROOT

ENV_PREFIXES = ("RECONCILER_", "AIRTABLE_", "TWENTY_", "DATABASE_URL")


@pytest.fixture(scope="module")
def demo_home() -> Iterator[Path]:
    """A RECONCILER_HOME for the demo's embedded Postgres."""
    folder = postgres_folder("reconciler-demo-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(demo_home: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `reconcile demo` process for the module; DATABASE_URL points nowhere, unused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env |= {"RECONCILER_HOME": str(demo_home), "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, demo_home


def _reports(output: str) -> list[dict[str, Any]]:
    paths = re.findall(r"report: (\S+\.json)", output)
    return [json.loads(Path(p).read_text()) for p in paths]


def _text(output: str) -> str:
    """The output with its lines unwrapped (it is wrapped at 120 columns without a terminal)."""
    return " ".join(output.split())


def _mapping(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["mappings"] if m["name"] == name)


def test_demo__exits_0_with_two_reports_under_reconciler_home(demo) -> None:
    done, home = demo
    assert done.returncode == 0, done.stderr
    first, second = _reports(done.stderr)
    assert first["status"] == second["status"] == "ok"
    assert all(Path(p).is_relative_to(home) for p in re.findall(r"report: (\S+)", done.stderr))
    assert _mapping(first, "leads")["pull"]["inserted"] == 300
    assert all(m["api"]["throttled"] == 0 for r in (first, second) for m in r["mappings"])


def test_demo__first_contact_links_the_reps_every_side_holds(demo) -> None:
    done, _ = demo
    first, _ = _reports(done.stderr)
    twenty, airtable = _mapping(first, "rep_progressions"), _mapping(first, "reps_airtable")
    assert (twenty["pull"]["matched"], twenty["pull"]["inserted"]) == (40, 0)
    assert twenty["push"]["created"] == 4  # the new hires only Postgres had
    assert (airtable["pull"]["matched"], airtable["pull"]["inserted"]) == (8, 0)
    assert airtable["push"]["created"] == 0
    assert airtable["push"]["updated"] == 1  # Twenty's newer Total XP, across the hub
    text = _text(done.stderr)
    assert "rep_progressions pull.matched 40 · reps_airtable pull.matched 8" in text
    assert "✓ First contact: linked, not duplicated" in text
    assert "Postgres 44 rows, Twenty 44, Airtable's Reps 8" in text
    assert re.search(r"✓ First contact: the newer side wins: .*Total XP (\d+) in Twenty", text)
    (xp,) = re.findall(r"Total XP (\d+) in Twenty", text)
    assert f"Postgres {xp}, Twenty {xp}, Airtable {xp}" in text


def test_demo__names_the_hub_config_the_readme_shows(demo) -> None:
    done, home = demo
    (path,) = re.findall(r"Config \(the hub mapping, for --config\): (\S+)", done.stderr)
    assert Path(path).is_relative_to(home)
    assert Path(path).read_text() == HUB_CONFIG
    (hub,) = [m for m in read_mappings(Path(path)) if m.name == "reps_airtable"]
    assert (hub.local_table, hub.match_on) == ("rep_progressions", ("workspace_member_id",))
    readme = (ROOT / "README.md").read_text()
    assert "```toml\n" + HUB_CONFIG + "```" in readme


def _keys(report: dict[str, Any]) -> dict[str, list[str]]:
    """A report's keys, in order: its own, its first mapping's and each of their objects'."""
    mapping = report["mappings"][0]
    objects = {f"mapping.{k}": v for k, v in mapping.items()} | dict(report)
    return {"report": list(report), "mapping": list(mapping)} | {
        name: list(value) for name, value in objects.items() if isinstance(value, dict)
    }


def test_demo__the_readme_shows_a_report_as_a_run_writes_it(demo) -> None:
    done, _ = demo
    _, second = _reports(done.stderr)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The run report") :]
    (example,) = re.findall(r"```json\n(.*?)```", section[: section.index("\n## ", 1)], re.S)
    shown = json.loads(example)
    assert _keys(shown) == _keys(second)
    leads = _mapping(second, "leads")
    assert shown["mappings"][0]["pull"] == leads["pull"]  # the demo's second run, as it went
    assert shown["mappings"][0]["push"] == leads["push"]


def test_demo__second_run_resolves_both_conflicts_and_the_union(demo) -> None:
    done, _ = demo
    _, second = _reports(done.stderr)
    leads, reps = _mapping(second, "leads"), _mapping(second, "rep_progressions")
    hub = _mapping(second, "reps_airtable")
    assert leads["pull"]["fetched"] == 3  # only the records edited in Airtable: the window works
    assert leads["pull"]["conflicts"] == 2 and leads["pull"]["skipped_local_newer"] == 1
    assert leads["push"]["updated"] == 13  # twelve claims and the note whose Postgres side won
    assert reps["pull"]["conflicts"] == 1  # the array edited on both sides
    # The union, the streak and the name from Airtable's Reps; rows created earlier: no echo.
    assert reps["push"]["updated"] == 3
    assert hub["pull"]["updated"] == 1  # the rename
    assert hub["push"]["updated"] == 1  # the Twenty edit; the rename is not echoed back
    text = _text(done.stderr)
    for story in (
        "✓ Conflict, Postgres newer",
        "✓ Conflict, Airtable newer",
        "✓ Array union",
        "✓ Airtable edit, pulled",
        "✓ Portal edits, pushed",
        "✓ Local rows created remotely",
        "✓ Twenty edit, to Airtable's Reps too",
        "✓ Airtable edit, to Twenty too",
    ):
        assert story in text, text
    assert "✗" not in text
    assert "Postgres wins; both sides now 'Call booked for Tuesday 10:00'" in text
    assert "Airtable wins; both sides now 'Replied: not interested this quarter'" in text
    assert re.search(r"union; both sides now \[.*'cold-calling'.*'negotiation'.*\]", text)
    assert "the same run pushed them to Airtable's Reps: Total XP 4200, rank E-5" in text
    assert re.search(r"pushed it to Twenty: Postgres '(.+-Okafor)', Twenty '\1'", text)


def test_demo__leaves_nothing_running_and_no_database_behind(demo) -> None:
    done, home = demo
    assert done.returncode == 0, done.stderr
    (folder,) = home.iterdir()
    assert postgres_processes(folder / "pg") == []
    assert not (folder / "pg").exists()
    assert "nothing left running" in done.stderr
    assert done.stdout == ""


Sides = dict[str, list[dict[str, Any]]]


def _sides(demo: Demo) -> Sides:
    """The reps as each side holds them, read directly."""
    rows = demo.sql(
        "SELECT workspace_member_id, name, total_xp, current_rank, twenty_id::text AS twenty_id, "
        "airtable_rep_id FROM rep_progressions"
    )
    return {
        "postgres": [dict(r) for r in rows.mappings()],
        "twenty": demo.twenty.records(),
        "airtable": [r["fields"] | {"id": r["id"]} for r in demo.airtable.records("Reps")],
    }


@pytest.fixture(scope="module")
def played() -> Iterator[tuple[DemoResult, Sides, Sides]]:
    """The demo in this process, with every side read after the first and the second run."""
    home = postgres_folder("reconciler-demo-test-")
    after: list[Sides] = []
    tell_first, tell = reconciler.demo.first_contact, reconciler.demo.tell

    def first_contact(demo: Demo, report: dict[str, Any]) -> Any:
        after.append(_sides(demo))
        return tell_first(demo, report)

    def stories(demo: Demo, report: dict[str, Any]) -> Any:
        after.append(_sides(demo))
        return tell(demo, report)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconciler.demo, "first_contact", first_contact)
        patch.setattr(reconciler.demo, "tell", stories)
        result = run_demo(str(home), say=lambda _: None)
    first, second = after
    yield result, first, second
    shutil.rmtree(home, ignore_errors=True)


def _by_member(records: list[dict[str, Any]], member_field: str) -> dict[str, dict[str, Any]]:
    found = {r[member_field]: r for r in records}
    assert len(found) == len(records), "two records for one rep"
    return found


def test_demo__no_duplicates_on_any_side_after_first_contact(played) -> None:
    result, sides, _ = played
    assert result.ok
    rows = _by_member(sides["postgres"], "workspace_member_id")
    twenty = _by_member(sides["twenty"], "workspaceMemberId")
    airtable = _by_member(sides["airtable"], "Workspace Member")
    assert len(rows) == len(twenty) == 44 and len(airtable) == 8
    for member, row in rows.items():
        assert row["twenty_id"] == twenty[member]["id"]
        if member in airtable:
            assert row["airtable_rep_id"] == airtable[member]["id"]
            assert row["total_xp"] == twenty[member]["totalXp"] == airtable[member]["Total XP"]
        else:
            assert row["airtable_rep_id"] is None


def test_demo__hub_edits_reach_the_other_remote_in_the_second_run(played) -> None:
    _, _, sides = played
    rows = _by_member(sides["postgres"], "workspace_member_id")
    twenty = _by_member(sides["twenty"], "workspaceMemberId")
    airtable = _by_member(sides["airtable"], "Workspace Member")
    (renamed,) = [m for m, r in airtable.items() if r["Name"].endswith("-Okafor")]
    assert rows[renamed]["name"] == twenty[renamed]["name"] == airtable[renamed]["Name"]
    (edited,) = [m for m, r in twenty.items() if r["totalXp"] == 4200]
    assert (airtable[edited]["Total XP"], airtable[edited]["Current Rank"]) == (4200, "E-5")
    assert len(rows) == len(twenty) == 44 and len(airtable) == 8
