"""``reconcile`` / ``reconcile run``: one reconciliation; and ``reconcile migrate``."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from reconciler.cli.app import JsonOut, app, stderr
from reconciler.errors import EXIT_UNAVAILABLE, UsageError

if TYPE_CHECKING:
    from typer.core import TyperGroup

    from reconciler.config import Settings

STAGES = ("pull", "push", "both")
STDOUT = "-"  # ``--report -``: the report on stdout instead of a file
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"  # set by GitHub Actions: a markdown file shown on the job
LOOKBACK_MAX = 5_256_000  # minutes: ten years; a window reaching before year 1 cannot be read

LOOKBACK_DEFAULT = 20  # minutes
LOOKBACK_ENV = "RECONCILER_LOOKBACK"
LOOKBACK_HELP = (
    "How far back to look for remote changes, in minutes (1 to 5256000, ten years; "
    "--full reads everything)."
)
Lookback = Annotated[
    int,
    typer.Option(
        "--lookback",
        envvar=LOOKBACK_ENV,
        min=1,
        max=LOOKBACK_MAX,
        metavar="MINUTES",
        help=LOOKBACK_HELP,
    ),
]
# Before a command, ``--lookback`` is taken as given and checked only when it starts a run
# (:func:`_checked_lookback`): a RECONCILER_LOOKBACK that only runs use must not stop
# `reconcile runs`, `reconcile log` or any command's --help.
LookbackBefore = Annotated[
    str | None,
    typer.Option("--lookback", envvar=LOOKBACK_ENV, metavar="MINUTES", help=LOOKBACK_HELP),
]
Stage = Annotated[
    str, typer.Option("--stage", metavar="pull|push|both", help="Run one stage or both.")
]
MappingOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mapping", metavar="NAME", help="Only this mapping (repeatable); default all configured."
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Decide everything, write nothing anywhere; the report says what would have happened.",
    ),
]
Full = Annotated[
    bool,
    typer.Option("--full", help="Ignore the window: read every remote record (catches deletions)."),
]
ReportPath = Annotated[
    Path | None,
    typer.Option(
        "--report",
        metavar="PATH",
        help="Where to write the JSON report; - prints it on stdout, as --json does "
        "[default: $RECONCILER_HOME/reports/<run_id>.json].",
    ),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="RECONCILER_CONFIG",
        metavar="PATH",
        help="Mapping config file (TOML); default: the built-in mappings.",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only report trouble.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr.")]
MassDelete = Annotated[
    bool,
    typer.Option(
        "--allow-mass-delete",
        help="With --full, allow marking more than the safety share of a "
        "table as deleted remotely.",
    ),
]
SkipLocked = Annotated[
    bool,
    typer.Option(
        "--skip-locked",
        help="Skip a mapping another run holds (reported as skipped) and run the others, "
        "instead of exiting 4.",
    ),
]


class _StopFlag:
    """Set by SIGTERM/SIGINT: the run finishes its current batch, records state and stops."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Catch SIGTERM and SIGINT while the run lasts; restore the previous handlers after."""

        def handler(signum: int, frame: Any) -> None:
            self.signal = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _do_run(
    *,
    lookback: int,
    stage: str,
    mapping: list[str] | None,
    dry_run: bool,
    full: bool,
    report: Path | None,
    json_out: bool,
    config: Path | None,
    quiet: bool,
    verbose: bool,
    allow_mass_delete: bool,
    skip_locked: bool,
) -> int:
    """One run with the parsed options; returns its exit code."""
    from reconciler.config import RunOptions, load_mappings, load_settings, select_mappings
    from reconciler.engine.run import Run
    from reconciler.remotes.factory import build_remote
    from reconciler.render import RunProgress, render_summary

    if stage not in STAGES:
        raise UsageError(f"--stage must be one of pull, push, both (got {stage!r})")
    settings = load_settings()
    if config is not None:
        settings = load_mappings(settings, config)
    options = RunOptions(
        lookback=lookback,
        stage=stage,
        mappings=tuple(mapping or ()),
        dry_run=dry_run,
        full=full,
        allow_mass_delete=allow_mass_delete,
        skip_locked=skip_locked,
    )
    selected = select_mappings(options, settings)
    report = report.expanduser() if report is not None else None  # ``~`` given in quotes
    to_file = report is None or str(report) != STDOUT  # ``--report -``: stdout, as --json
    json_out = json_out or not to_file
    _check_folders(report, settings)
    stop = _StopFlag()
    console = stderr()
    with RunProgress(console, enabled=console.is_terminal and not quiet) as progress:
        factory = build_remote
        run = Run(options, settings, selected, factory, on_progress=progress, should_stop=stop)
        with stop.installed():
            result = run.execute()
    document = result.to_dict()
    path = report or settings.home / "reports" / f"{result.run_id}.json"
    unwritten = None
    if to_file:
        try:
            result.write(path)
        except OSError as exc:  # checked before the run: the disk filled up, or it changed since
            why = exc.strerror or type(exc).__name__
            unwritten = f"could not write the report to {path} ({why})"
    if json_out:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    written = None if unwritten or not to_file else str(path)
    render_summary(console, document, quiet=quiet, verbose=verbose, report_path=written)
    append_step_summary(document)
    if unwritten:  # the run went through; what it did is above, but its record is missing
        console.print(f"reconcile: error: {unwritten}", markup=False, highlight=False)
        return result.exit_code or EXIT_UNAVAILABLE
    return result.exit_code


def _check_folders(report: Path | None, settings: Settings) -> None:
    """The report's folder (unless it goes to stdout), and the embedded Postgres's, can be
    written: checked before the run contacts anything, so that a run is not done only to lose
    its report.

    Raises:
        UsageError: naming the option or variable to change.
    """
    from reconciler.config import embedded_folder, usable_folder

    if report is None:
        usable_folder(settings.home / "reports", "RECONCILER_HOME")
    elif str(report) == STDOUT:
        pass
    elif not report.name or report.is_dir():
        raise UsageError(f"--report: {str(report)!r} is a folder; give the report file's path")
    else:
        usable_folder(report.parent, "--report")
    if settings.database_url is None:
        embedded_folder(settings.home)


def append_step_summary(document: dict[str, Any]) -> None:
    """Append the run's counters as a markdown table to ``$GITHUB_STEP_SUMMARY``, when set.

    Read here rather than with the settings: it is a fact of the CI job, not a setting of the
    tool. A summary that cannot be written is pointed out and does not change the exit code.
    """
    target = os.environ.get(STEP_SUMMARY, "").strip()
    if not target:
        return
    from reconciler.step_summary import step_summary

    try:
        with open(target, "a", encoding="utf-8") as summary:
            summary.write(step_summary(document))
    except OSError as exc:
        stderr().print(
            f"reconcile: warning: could not append to {STEP_SUMMARY} ({target}): {exc}",
            markup=False,
            highlight=False,
        )


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    lookback: LookbackBefore = None,
    stage: Stage = "both",
    mapping: MappingOpt = None,
    dry_run: DryRun = False,
    full: Full = False,
    report: ReportPath = None,
    json_out: JsonOut = False,
    config: ConfigPath = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    allow_mass_delete: MassDelete = False,
    skip_locked: SkipLocked = False,
) -> None:
    """Two-way reconciliation of Airtable and Twenty CRM with Postgres."""
    if ctx.invoked_subcommand is None:  # `reconcile [OPTIONS]` is `reconcile run [OPTIONS]`
        raise typer.Exit(_do_run(**{**ctx.params, "lookback": _checked_lookback(ctx, lookback)}))
    given = _given(ctx)
    if given and ctx.invoked_subcommand != "run":
        raise UsageError(
            f"{_names(ctx, given)} before `{ctx.invoked_subcommand}`: run options apply only to "
            f"a run (`reconcile [OPTIONS]` or `reconcile run [OPTIONS]`); see "
            f"`reconcile {ctx.invoked_subcommand} --help`"
        )
    ctx.obj = {name: ctx.params[name] for name in given}  # `reconcile --dry-run run` keeps it


@app.command("run")
def run_command(
    ctx: typer.Context,
    lookback: Lookback = LOOKBACK_DEFAULT,
    stage: Stage = "both",
    mapping: MappingOpt = None,
    dry_run: DryRun = False,
    full: Full = False,
    report: ReportPath = None,
    json_out: JsonOut = False,
    config: ConfigPath = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    allow_mass_delete: MassDelete = False,
    skip_locked: SkipLocked = False,
) -> None:
    """One reconciliation run: stage 1 (pull) then stage 2 (push), over every mapping."""
    before = ctx.obj if isinstance(ctx.obj, dict) else {}
    twice = [name for name in _given(ctx) if name in before]
    if twice:
        raise UsageError(f"{_names(ctx, twice)} given both before and after `run`: give it once")
    if "lookback" in before:
        before = {**before, "lookback": _checked_lookback(ctx, before["lookback"])}
    raise typer.Exit(_do_run(**{**ctx.params, **before}))


def _checked_lookback(ctx: typer.Context, given: str | None) -> int:
    """``--lookback`` as given before any command (or by RECONCILER_LOOKBACK), checked and
    converted by `run`'s own option, so that both say the same of a bad value."""
    run = cast("TyperGroup", ctx.find_root().command).get_command(ctx, "run")
    assert run is not None  # registered below
    option = next(p for p in run.params if p.name == "lookback")
    value = option.process_value(ctx, given)
    return LOOKBACK_DEFAULT if value is None else int(value)


def _given(ctx: typer.Context) -> list[str]:
    """The parameters given on the command line (not defaults or environment variables)."""
    return [
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    ]


def _names(ctx: typer.Context, params: list[str]) -> str:
    """Parameters as the user typed them (``--dry-run, --lookback``)."""
    flags = {p.name: p.opts[0] for p in ctx.command.params}
    return ", ".join(flags.get(name, name) for name in params)


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (safe to run twice)."""
    from reconciler.config import load_settings
    from reconciler.store.database import connect, embedded_url, migrate

    settings = load_settings()
    url = settings.database_url.value if settings.database_url else embedded_url(settings.home)
    engine = connect(url)
    try:
        revision = migrate(engine)
    finally:
        engine.dispose()
    stderr().print(f"database migrated to revision {revision}", markup=False)
