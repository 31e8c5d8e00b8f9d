"""The console script's exit: the run's exit code and every byte of its output, the exit
handlers run (the embedded Postgres stops), and no interpreter teardown after them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from reconciler.store.database import postgres_processes
from tests.helpers import seed_leads
from tests.processes import ROOT, start_reconcile

# A program that keeps an object whose finalizer writes a file: the interpreter's teardown
# calls it, a process that leaves without the teardown never does.
WITNESS = """
import os, sys
class Witness:
    def __del__(self, write=os.write, fd=os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)):
        write(fd, b"torn down")
keep = Witness()
print("still buffered when the run ends")  # a pipe's stdout is block-buffered
sys.argv = ["reconcile", *sys.argv[2:]]
from reconciler.cli import {name}
{name}()
"""


def _witnessed(name: str, tmp_path: Path, *args: str) -> tuple[int, bool]:
    """Exit code of ``reconcile ARGS`` run through ``name``, and whether teardown ran; the
    line written before the run must reach the pipe either way."""
    mark = tmp_path / f"{name}.mark"
    done = subprocess.run(
        [sys.executable, "-c", WITNESS.format(name=name), str(mark), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith("still buffered when the run ends\n"), done.stdout
    return done.returncode, mark.read_bytes() == b"torn down"


def test_console_script__leaves_without_teardown_with_the_exit_code(tmp_path) -> None:
    assert _witnessed("entry", tmp_path, "--help") == (0, False)
    assert _witnessed("entry", tmp_path, "--lookback", "-5") == (2, False)
    # The same program through main keeps the teardown: the witness can see it.
    assert _witnessed("main", tmp_path, "--lookback", "-5") == (2, True)


def test_console_script__a_piped_report_arrives_whole(airtable, database_url, tmp_path) -> None:
    # stdout into a pipe is block-buffered: leaving without the teardown must flush it first.
    seed_leads(airtable, 40)
    proc = start_reconcile(tmp_path / "r.json", "--mapping", "leads", "--json")
    code, out, err = proc.finish()
    assert code == 0, err
    assert json.loads(out) == proc.report
    assert proc.report["mappings"][0]["pull"]["inserted"] == 40


def test_console_script__the_embedded_postgres_stops_when_the_run_ends(airtable, home) -> None:
    # pgserver stops the server it started from an exit handler: it must still run.
    # As under cron or systemd: no XDG_RUNTIME_DIR, and -q prints nothing on success.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["RECONCILER_HOME"] = str(home)
    seed_leads(airtable, 3)
    proc = start_reconcile(home / "r.json", "--mapping", "leads", "-q", env=env)
    code, _, err = proc.finish(timeout=120)
    assert (code, err) == (0, ""), err
    assert proc.report["mappings"][0]["pull"]["inserted"] == 3
    assert postgres_processes(home / "pg") == []


# A process that starts the embedded Postgres as a run does, says so, and waits to be killed.
HOLDER = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pgserver
pgserver.get_server(sys.argv[1])
print("up", flush=True)
time.sleep(120)
"""


def test_console_script__a_postgres_left_by_a_killed_run_stops_after_the_next_run(
    airtable, home
) -> None:
    """A run killed outright (``kill -9``, a ``timeout``, the OOM killer) leaves the embedded
    Postgres running, its pid still on pgserver's list of the processes using it: the next
    run, the last one using it, stops it when it ends."""
    pgdata = home / "pg"
    pgdata.mkdir(parents=True)
    command = [sys.executable, "-c", HOLDER, str(pgdata)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "up\n"
        holder.kill()
    assert postgres_processes(pgdata) != []  # left running by the killed process
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["RECONCILER_HOME"] = str(home)
    seed_leads(airtable, 3)

    try:
        proc = start_reconcile(home / "r.json", "--mapping", "leads", "-q", env=env)
        code, _, err = proc.finish(timeout=120)

        assert (code, err) == (0, ""), err
        assert proc.report["mappings"][0]["pull"]["inserted"] == 3
        assert postgres_processes(pgdata) == []
    finally:
        for pid in postgres_processes(pgdata):  # not left behind when the test fails
            os.kill(pid, signal.SIGTERM)
