"""`reconcile demo` as a real process: two runs, the stories end as told, nothing left running."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.demo import postgres_processes
from tests.processes import ENTRY, ROOT

ENV_PREFIXES = ("RECONCILER_", "AIRTABLE_", "TWENTY_", "DATABASE_URL")


@pytest.fixture(scope="module")
def demo_home() -> Iterator[Path]:
    """A RECONCILER_HOME the embedded Postgres (an unprivileged user under root) can reach."""
    folder = Path(tempfile.mkdtemp(prefix="reconciler-demo-test-"))
    folder.chmod(0o755)
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


def _mapping(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in report["mappings"] if m["name"] == name)


def test_demo__exits_0_with_two_reports_under_reconciler_home(demo) -> None:
    done, home = demo
    assert done.returncode == 0, done.stderr
    first, second = _reports(done.stderr)
    assert first["status"] == second["status"] == "ok"
    assert all(Path(p).is_relative_to(home) for p in re.findall(r"report: (\S+)", done.stderr))
    assert _mapping(first, "leads")["pull"]["inserted"] == 300
    assert _mapping(first, "rep_progressions")["pull"]["inserted"] == 40
    assert _mapping(first, "rep_progressions")["push"]["created"] == 4


def test_demo__second_run_resolves_both_conflicts_and_the_union(demo) -> None:
    done, _ = demo
    _, second = _reports(done.stderr)
    leads, reps = _mapping(second, "leads"), _mapping(second, "rep_progressions")
    assert leads["pull"]["fetched"] == 3  # only the records edited in Airtable: the window works
    assert leads["pull"]["conflicts"] == 2 and leads["pull"]["skipped_local_newer"] == 1
    assert leads["push"]["updated"] == 13  # twelve claims and the note whose Postgres side won
    assert reps["pull"]["conflicts"] == 1  # the array edited on both sides
    assert reps["push"]["updated"] == 2  # the union and the streak; rows created earlier: no echo
    text = done.stderr
    for story in (
        "✓ Conflict, Postgres newer",
        "✓ Conflict, Airtable newer",
        "✓ Array union",
        "✓ Airtable edit, pulled",
        "✓ Portal edits, pushed",
        "✓ Local rows created remotely",
    ):
        assert story in text, text
    assert "✗" not in text
    assert "Postgres wins; both sides now 'Call booked for Tuesday 10:00'" in text
    assert "Airtable wins; both sides now 'Replied: not interested this quarter'" in text
    assert re.search(r"union; both sides now \[.*'cold-calling'.*'negotiation'.*\]", text)


def test_demo__leaves_nothing_running_and_no_database_behind(demo) -> None:
    done, home = demo
    assert done.returncode == 0, done.stderr
    (folder,) = home.iterdir()
    assert postgres_processes(folder / "pg") == []
    assert not (folder / "pg").exists()
    assert "nothing left running" in done.stderr
    assert done.stdout == ""
