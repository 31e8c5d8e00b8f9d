"""Start-up: ``reconcile --help`` and a run with nothing to do, each timed beside the imports
that bound it, interleaved (A B A B) in the same bench run.

* ``startup``: ``reconcile --help`` beside ``python -c "import typer, rich"``, and
  ``reconcile run --help`` beside the same (information);
* ``noop``: a whole run (both mappings) that finds nothing to do, beside importing every module
  such a run loads except the tool's own (learnt from the same run, with
  :mod:`bench.modules_probe`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence

from bench import modules_probe
from bench.lab import Lab, ProcessResult, reconcile_command
from bench.measure import HELP_RATIO_MAX, NOOP_RATIO_MAX, Row, at_most
from bench.scale import Scale, say
from bench.seeding import OLD_MINUTES, seed_leads, seed_progressions

TYPER_AND_RICH = "import typer, rich"
IMPORT_ALL = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"
PROBE = modules_probe.__file__  # run as a script (-P: its folder stays off sys.path)
OWN = ("reconciler", "bench", "__main__", "__mp_main__")


def startup(lab: Lab, scale: Scale) -> list[Row]:
    """``reconcile --help`` and ``reconcile run --help`` beside ``import typer, rich``."""
    reference = [sys.executable, "-c", TYPER_AND_RICH]
    commands = {
        "help": [*reconcile_command(), "--help"],
        "reference": reference,
        "run help": [*reconcile_command(), "run", "--help"],
    }
    say(f"startup: --help beside `{TYPER_AND_RICH}`, {scale.startup_rounds} rounds")
    walls = _interleaved(lab, commands, scale.startup_rounds)
    typer = statistics.median(walls["reference"])
    rows = []
    for key, figure, limit in (
        ("help", "reconcile --help", HELP_RATIO_MAX),
        ("run help", "reconcile run --help", None),
    ):
        wall = statistics.median(walls[key])
        rows.append(
            at_most(
                "start",
                f"{figure}, wall (s)",
                f"{wall:.3f}",
                f"import typer, rich {typer:.3f}",
                wall / typer,
                limit,
                f"medians of {len(walls[key])}, interleaved with `python -c "
                f'"{TYPER_AND_RICH}"` (same interpreter); process start included',
            )
        )
    return rows


def noop(lab: Lab, scale: Scale) -> list[Row]:
    """A whole run with nothing to do, beside importing the modules it loads."""
    with lab.scenario():
        seed_leads(lab.airtable, scale.noop, age_minutes=OLD_MINUTES)
        seed_progressions(lab.twenty, scale.noop, age_minutes=OLD_MINUTES)
        say(f"noop: first sync of {scale.noop:,} records per remote (--full)")
        lab.reconcile_ok("--full")
        # A run with nothing to do comes long after the sync that filled the tables: the
        # server's work that sync left behind (vacuum, statistics of the new rows) is done.
        lab.postgres.settle(lab.database_url)
        modules = _modules_of_a_run(lab)
        reference = [sys.executable, "-c", IMPORT_ALL, *modules]
        say(f"noop: a run with nothing to do beside importing its {len(modules)} modules")
        walls: dict[str, list[float]] = {"run": [], "reference": []}
        durations, requests = [], 0
        lab.measure(reference)  # warm the file cache for both
        for _ in range(scale.noop_rounds):
            lab.reset_logs()
            result = lab.reconcile_ok()
            _no_writes(lab)
            walls["run"].append(result.wall)
            durations.append(result.duration)
            requests = len(lab.airtable.requests) + len(lab.twenty.requests)
            walls["reference"].append(_ok(lab.measure(reference)).wall)
    run, imports = statistics.median(walls["run"]), statistics.median(walls["reference"])
    tops = {m.split(".")[0] for m in modules}
    packages = sorted(t for t in tops if t not in sys.stdlib_module_names and t[0] != "_")
    note = (
        f"medians of {len(walls['run'])}, interleaved; {scale.noop:,} synced rows per mapping, "
        f"{requests} requests, no writes; report duration {statistics.median(durations):.2f} s; "
        f"the reference imports every module the run loaded but the tool's own "
        f"({len(modules)} modules: the standard library's and {', '.join(packages)})"
    )
    return [
        at_most(
            "start",
            "no-op run (both mappings), wall (s)",
            f"{run:.2f}",
            f"its imports {imports:.2f}",
            run / imports,
            NOOP_RATIO_MAX,
            note,
        )
    ]


def _interleaved(lab: Lab, commands: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Each command once untimed (warm caches), then ``rounds`` rounds of all in turn."""
    for argv in commands.values():
        _ok(lab.measure(argv))
    walls: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(rounds):
        for key, argv in commands.items():
            walls[key].append(_ok(lab.measure(argv)).wall)
    return walls


def _modules_of_a_run(lab: Lab) -> list[str]:
    """The modules a run with nothing to do loads, in load order, but the tool's own and any
    that cannot be imported by name alone."""
    out = lab.home / "noop-modules.json"
    lab.reconcile_ok(command=[sys.executable, "-P", PROBE, str(out)])
    loaded = [m for m in json.loads(out.read_text()) if m.split(".")[0] not in OWN]
    failing = set(_unimportable(loaded))
    return [m for m in loaded if m not in failing]


def _unimportable(modules: Sequence[str]) -> list[str]:
    check = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    try:\n"
        "        importlib.import_module(name)\n    except BaseException:\n        print(name)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, *modules], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def _no_writes(lab: Lab) -> None:
    writes = sum(
        r.method != "GET" and not r.path.endswith("/listRecords")
        for em in (lab.airtable, lab.twenty)
        for r in em.requests
    )
    if writes:
        raise RuntimeError(f"a run with nothing to do wrote {writes} time(s)")


def _ok(result: ProcessResult) -> ProcessResult:
    if result.exit_code != 0:
        raise RuntimeError(
            f"{' '.join(result.args)} exited {result.exit_code}: {result.stderr.strip()[-300:]}"
        )
    return result
