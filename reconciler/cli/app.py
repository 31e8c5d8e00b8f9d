"""The Typer application, shared option types, and the console entry point.

``reconcile [OPTIONS]`` is the same as ``reconcile run [OPTIONS]``. Only the CLI modules and the
renderer import typer or rich; commands call one engine function and map errors to exit codes.

Start-up stays cheap: the CLI modules import typer and the standard library at the top, and
everything else (rich, the settings, the engine, the store, the remotes) inside the command that
needs it, so ``reconcile --help`` and ``reconcile <command> --help`` load nothing more.
``tests/test_startup.py`` holds the list of what must stay out.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reconciler.errors import EXIT_UNAVAILABLE, EXIT_USAGE, ReconcilerError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from reconciler.config import Settings

app = typer.Typer(
    name="reconcile",
    help="Two-way reconciliation of Airtable and Twenty CRM with Postgres.\n\n"
    "Without a command, runs one reconciliation (the same as `reconcile run`).",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
)

JsonOut = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (and nothing else there).")
]


def console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich console for the commands' output. Emoji codes are left as typed: a value, a
    path or a name such as ``a:fire:b`` is printed as it is, never as ``a🔥b``."""
    from rich.console import Console

    return Console(stderr=stderr, emoji=False, **options)


def stderr() -> Console:
    """The console for human output (stderr; stdout is kept for --json).

    Lines are never wrapped: a cron mail or log line must stay one line.
    """
    return console(stderr=True, soft_wrap=True)


def open_database(settings: Settings | None = None) -> Engine:
    """The database of the settings (read from the environment when not given), for the
    commands that only read the history: ``DATABASE_URL``, which must be migrated (exit 3
    otherwise), or the embedded Postgres. Imports the store only, never the engine."""
    from reconciler.config import load_settings
    from reconciler.store import database

    settings = load_settings() if settings is None else settings
    url = None if settings.database_url is None else settings.database_url.value
    return database.open_database(url, settings.home)


def utf8(stream: Any) -> bool:
    """Whether ``stream`` encodes text as UTF-8 (so it can hold any character)."""
    encoding = str(getattr(stream, "encoding", None) or "utf-8")
    return encoding.lower().replace("-", "").replace("_", "") == "utf8"


def tolerant_streams() -> None:
    """Standard streams that cannot encode every character (a locale such as
    ``en_US.ISO-8859-1``, ``PYTHONIOENCODING=ascii``) print ``?`` for what they cannot hold
    (a check mark, a name such as Zoë under ASCII) instead of ending the command on it. JSON
    output is escaped to ASCII there (``log --json``; the others always escape)."""
    for stream in (sys.stdout, sys.stderr):
        if not utf8(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def marks() -> tuple[str, str]:
    """The marks of a passed and a failed line on stdout: ✓ and ✗, or + and x where stdout
    cannot encode them (both would print as ``?``)."""
    return ("✓", "✗") if utf8(sys.stdout) else ("+", "x")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit codes from the error tree, no tracebacks."""
    args = sys.argv[1:] if argv is None else argv
    tolerant_streams()
    command = typer.main.get_command(app)
    try:
        code = command.main(args, prog_name="reconcile", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except typer.TyperException as exc:
        stderr().print(
            f"reconcile: error: {exc.format_message()}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        code = EXIT_USAGE
    except ReconcilerError as exc:
        stderr().print(f"reconcile: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        code = exc.exit_code
    except Exception as exc:
        code = _unexpected(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _unexpected(exc: Exception) -> int:
    """Say what stopped a command, in one line, never a traceback; returns the exit code 3. A
    database error (a privilege missing, the connection lost) is said as the database's;
    anything else is a defect of the tool."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")  # loaded by whatever raised one
    if sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.SQLAlchemyError):
        from reconciler.store.database import database_failure

        said = database_failure(exc)
    else:
        # The first line only: a message may go on with statements and parameters.
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        said = (
            f"internal error: {type(exc).__name__}: {first}; please report it with the command "
            "that caused it"
        )
    stderr().print(f"reconcile: error: {said}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_UNAVAILABLE


class _Exit:
    """The exit code :func:`entry` leaves with, once :func:`main` has decided it."""

    code: int | None = None


def entry() -> None:
    """The ``reconcile`` console script: :func:`main`, then the process ends as soon as the
    exit handlers have run, without the interpreter's teardown.

    Tearing down frees every object and module one by one, a few tenths of a second after a
    run has loaded its libraries and read thousands of records, and nothing of it reaches the
    user: the report is written, the database connections are closed, and the embedded
    Postgres's exit handler (pgserver's) has stopped the server. The same as the
    ``atexit.register(os._exit, 0)`` of "Dismissing Python Garbage Collection at Instagram"
    (Instagram Engineering, 2017), with the run's own exit code. The handler is registered
    before the command imports anything that registers one (logging, pgserver), so it runs
    last; it flushes the standard streams, which ``os._exit`` does not. Tests call
    :func:`main` in-process and keep the teardown; a run whose ``main`` ends by anything but
    its exit code (a KeyboardInterrupt outside the command) keeps it too.
    """
    atexit.register(_leave)
    try:
        main()
    except SystemExit as exc:
        _Exit.code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        raise


def _leave() -> None:
    if _Exit.code is None:
        return
    for stream in (sys.stdout, sys.stderr):  # os._exit flushes nothing
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing can reach it
            stream.flush()
    os._exit(_Exit.code)
