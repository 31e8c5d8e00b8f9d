"""Start-up: each command imports only what it needs. Checked by what a fresh interpreter has
loaded (never by timing): ``--help`` loads typer, rich and the CLI modules, and a run leaves the
emulators and the demo alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import seed_leads
from tests.processes import ROOT

# What `reconcile --help` must not load: the database stack, the remotes' clients, and every
# part of the tool behind the commands.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "pyairtable",
    "pydantic",
    "httpx",
    "psycopg",
    "tenacity",
    "reconciler.config",
    "reconciler.engine",
    "reconciler.store",
    "reconciler.remotes",
    "reconciler.emulators",
    "reconciler.demo",
    "reconciler.check",
)
# Typer (0.29) coerces option values through pydantic as soon as a command's options are
# processed, which `reconcile <command> --help` does for `reconcile`'s own options first; that
# import is Typer's, not the tool's.
TYPERS_OWN = ("pydantic",)
COMMANDS = ("run", "migrate", "check", "runs", "log", "status", "demo")

# Runs `reconcile ARGS` (or only imports the CLI) and writes the loaded modules to a file at exit.
PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
import reconciler.cli
if sys.argv[1:] != ["--import-only"]:
    reconciler.cli.main(sys.argv[1:])
"""


def _loaded(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules a fresh interpreter had loaded when ``reconcile ARGS`` exited."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), done.stderr
    return set(json.loads(out.read_text())), done


def _heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        m
        for m in modules
        for name in HEAVY
        if name not in allowed and (m == name or m.startswith(name + "."))
    )


def test_import_cli__loads_no_heavy_module(tmp_path: Path) -> None:
    modules, done = _loaded(tmp_path, "--import-only")
    assert _heavy(modules) == [], done.stderr
    assert "rich.progress" not in modules  # rich too waits for a command that prints


def test_help__loads_typer_and_the_cli_only(tmp_path: Path) -> None:
    modules, done = _loaded(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "--skip-locked" in done.stdout
    assert _heavy(modules) == []
    ours = {m for m in modules if m.startswith("reconciler")}
    assert all(m.startswith("reconciler.cli") for m in ours - {"reconciler", "reconciler.errors"})


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help__loads_nothing_of_the_tool(tmp_path: Path, command: str) -> None:
    modules, done = _loaded(tmp_path, command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"reconcile {command}" in done.stdout
    assert _heavy(modules, allowed=TYPERS_OWN) == []


def test_run__loads_neither_the_emulators_nor_the_demo(airtable, database_url, tmp_path) -> None:
    seed_leads(airtable, 2)
    modules, done = _loaded(tmp_path, "--mapping", "leads", "--report", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    assert "reconciler.engine.run" in modules  # the probe saw a real run
    unwanted = ("reconciler.emulators", "reconciler.demo", "reconciler.check")
    assert [m for m in modules if m.startswith(unwanted)] == []


def test_declared_head__is_the_head_alembic_computes() -> None:
    """A run checks the schema against the revision the migration files declare, read without
    loading alembic; it must be the head alembic itself would compute."""
    from reconciler.store.database import declared_head, head_revision

    assert declared_head() == head_revision() != ""


def test_older_schema__a_run_exits_3_naming_the_revision(airtable, db, cli) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE reconciler.alembic_version SET version_num = '0004'")
    result = cli("--mapping", "leads")
    assert result.exit_code == 3, result.output
    assert "is at revision 0004" in result.stderr and "reconcile migrate" in result.stderr


def test_status__loads_no_remote_client_and_no_engine(
    database_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRTABLE_TOKEN", "pat-unused")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appUNUSED000000001")
    modules, done = _loaded(tmp_path, "status")
    assert done.returncode == 1, done.stderr  # an empty history: never synced
    remote = ("httpx", "pyairtable", "tenacity", "reconciler.remotes", "reconciler.engine")
    assert [m for m in modules if m.startswith(remote)] == []
