"""The bench's laboratory: an embedded Postgres, both emulators, and the real ``reconcile`` process.

Everything a scenario touches is here: a fresh migrated database per scenario (cloned from a
template migrated once), the Airtable and Twenty emulators running in this process as threads,
switched between realistic conditions (latency and the remotes' real rate limits) and fast ones
(no latency, no limits), and :meth:`Lab.reconcile`, which runs the installed ``reconcile`` command
in a child process and measures its wall time and peak memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.base import EmulatorServer, SlidingWindowLimiter, TokenBucketLimiter
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.store.database import connect, migrate, sqlalchemy_url

TEMPLATE = "bench_template"
ENV_PREFIXES = ("RECONCILER_", "AIRTABLE_", "TWENTY_")

# Spawns the measured command and reports its wall time, exit code and peak RSS. The measured
# process must not be a direct child of this one: Linux carries the peak RSS of the address space
# a process replaced by exec into its own figure, and a child spawned straight from this process
# (vfork) replaces this process's address space, emulator data included. From this small launcher
# the measured process inherits only the launcher's few megabytes.
LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - started
proc.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as out:
    json.dump({"exit_code": code, "wall": wall, "max_rss_kb": usage.ru_maxrss}, out)
"""
UNLIMITED_AIRTABLE_RATE = "1000000"  # requests per second the client allows itself
UNLIMITED_TWENTY_RATE = "60000000"  # requests per minute


@dataclass(frozen=True)
class Conditions:
    """How the remotes behave: latency and the limits each emulator enforces.

    Attributes:
        latency: seconds added before every answer.
        airtable_rate: Airtable requests per second per base (0: unlimited).
        airtable_lockout: seconds Airtable refuses everything after going over.
        twenty_per_minute: Twenty requests per minute (0: unlimited).
        twenty_burst: Twenty's bucket capacity; small, so a client that does not pace is caught.
    """

    latency: float = 0.0
    airtable_rate: int = 0
    airtable_lockout: float = 0.0
    twenty_per_minute: float = 0.0
    twenty_burst: float = 1.0

    @property
    def limited(self) -> bool:
        """Whether the emulators enforce rate limits (the client then paces to them)."""
        return self.airtable_rate > 0 or self.twenty_per_minute > 0


REALISTIC = Conditions(
    latency=0.08, airtable_rate=5, airtable_lockout=30.0, twenty_per_minute=100, twenty_burst=10
)
FAST = Conditions()


@dataclass(frozen=True)
class ProcessResult:
    """One ``reconcile`` invocation, measured from outside.

    Attributes:
        args: the command line arguments after ``reconcile``.
        exit_code: the process's exit code.
        wall: seconds from spawning the process to reaping it.
        max_rss_mb: the process's peak resident memory (MiB), from ``wait4``.
        report: the JSON run report it wrote (empty for commands that write none).
        stderr: what it printed on stderr.
    """

    args: tuple[str, ...]
    exit_code: int
    wall: float
    max_rss_mb: float
    report: dict[str, Any]
    stderr: str

    def mapping(self, name: str) -> dict[str, Any]:
        """The report entry of one mapping."""
        return next(m for m in self.report["mappings"] if m["name"] == name)

    @property
    def duration(self) -> float:
        """The run's own duration (seconds), from its report."""
        return float(self.report["duration_ms"]) / 1000.0


class Postgres:
    """An embedded Postgres (pgserver in a temporary folder) with a migrated template database.

    Args:
        admin_url: an existing server's ``postgresql://`` URL to use instead of starting one.
    """

    def __init__(self, admin_url: str | None = None) -> None:
        self._server: Any = None
        self._folder: Path | None = None
        if admin_url is None:
            import pgserver

            # Outside any private temp folder: as root, the server runs as an unprivileged user
            # that must be able to reach its data directory.
            self._folder = Path(tempfile.mkdtemp(prefix="reconciler-bench-pg-"))
            self._folder.chmod(0o755)
            self._server = pgserver.get_server(self._folder, cleanup_mode="delete")  # type: ignore[attr-defined]
            admin_url = str(self._server.get_uri())
        self.admin_url = admin_url
        self._admin = sa.create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
        self._template = f"{TEMPLATE}_{uuid.uuid4().hex[:8]}"
        self._execute(f"CREATE DATABASE {self._template}")
        engine = connect(self.url_of(self._template))
        migrate(engine)
        engine.dispose()

    def url_of(self, database: str) -> str:
        """The ``postgresql://`` URL of a database on this server."""
        head, sep, tail = self.admin_url.partition("/postgres?")
        if not sep:
            head, _, tail = self.admin_url.rpartition("/")
            return f"{head}/{database}"
        return f"{head}/{database}?{tail}"

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A fresh migrated database for one scenario; yields its URL and drops it afterwards."""
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
        try:
            yield self.url_of(name)
        finally:
            self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def settle(self, url: str) -> None:
        """Do now the background work a run left behind in the database at ``url`` (vacuum and
        analyze its new rows, write its dirty pages out), so it does not land in the next run
        measured."""
        engine = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("VACUUM (ANALYZE)"))
        finally:
            engine.dispose()
        self._execute("CHECKPOINT")

    def close(self) -> None:
        """Drop the template and stop the server this object started."""
        self._execute(f"DROP DATABASE IF EXISTS {self._template} WITH (FORCE)")
        self._admin.dispose()
        if self._server is not None:
            self._server.cleanup()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(sa.text(sql))


class Lab:
    """Postgres, both emulators and a working folder; runs ``reconcile`` against them.

    Args:
        admin_url: an existing Postgres server to use instead of starting an embedded one.
    """

    def __init__(self, admin_url: str | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
        self.postgres = Postgres(admin_url)
        self.airtable = AirtableEmulator(rate_limit=0, lockout=0.0, iterator_ttl=3600.0)
        self.twenty = TwentyEmulator(rate_per_minute=0)
        for em in (self.airtable, self.twenty):
            em.start()
            answer_without_delay(em)
        self.conditions = FAST
        self.database_url = ""
        self._counter = 0

    def close(self) -> None:
        """Stop the emulators and the database; remove the working folder."""
        self.airtable.stop()
        self.twenty.stop()
        self.postgres.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scenario set-up -------------------------------------------------------------------------

    @contextlib.contextmanager
    def scenario(self) -> Iterator[sa.Engine]:
        """Empty remotes and a fresh database for one scenario, under fast conditions.

        Yields an engine on the scenario's database, for seeding and checks.
        """
        self.airtable.reset()
        self.twenty.reset()
        self.set_conditions(FAST)
        with self.postgres.fresh() as url:
            self.database_url = url
            engine = sa.create_engine(sqlalchemy_url(url))
            try:
                yield engine
            finally:
                engine.dispose()

    def set_conditions(self, conditions: Conditions) -> None:
        """Switch both emulators (and the client's own pacing) to these conditions."""
        self.conditions = conditions
        self.airtable.latency = conditions.latency
        self.airtable.limiter = SlidingWindowLimiter(
            conditions.airtable_rate, 1.0, conditions.airtable_lockout
        )
        self.twenty.latency = conditions.latency
        self.twenty.limiter = TokenBucketLimiter(
            conditions.twenty_per_minute, conditions.twenty_burst
        )

    def reset_logs(self) -> None:
        """Forget the requests both emulators have logged."""
        self.airtable.reset_log()
        self.twenty.reset_log()

    # -- the real command ------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The child's environment: this process's, minus any reconciler setting, plus the lab's."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(ENV_PREFIXES) and k != "DATABASE_URL"
        }
        limited = self.conditions.limited
        env.update(
            DATABASE_URL=self.database_url,
            RECONCILER_HOME=str(self.home),
            AIRTABLE_TOKEN=self.airtable.token,
            AIRTABLE_BASE_ID=self.airtable.base_id,
            AIRTABLE_API_URL=self.airtable.url,
            AIRTABLE_RATE_LIMIT=str(self.conditions.airtable_rate)
            if limited
            else UNLIMITED_AIRTABLE_RATE,
            TWENTY_API_KEY=self.twenty.token,
            TWENTY_API_URL=self.twenty.url,
            TWENTY_RATE_LIMIT=str(self.conditions.twenty_per_minute)
            if limited
            else UNLIMITED_TWENTY_RATE,
        )
        return env

    def reconcile(self, *args: str, command: Sequence[str] = ()) -> ProcessResult:
        """Run ``reconcile ARGS`` in a child process; measure wall time and peak memory.

        Run commands write their report to a file of the working folder, which is read back.
        The wall time runs from spawning ``reconcile`` to reaping it (process start included).
        ``command`` replaces the ``reconcile`` command itself (an instrumented entry point).
        """
        self._counter += 1
        argv = list(args)
        report_path = self.home / f"report-{self._counter}.json"
        is_run = not argv or argv[0].startswith("-") or argv[0] == "run"
        if is_run and "--report" not in argv:
            argv += ["--report", str(report_path)]
        err_path = self.home / f"stderr-{self._counter}.txt"
        stats_path = self.home / f"stats-{self._counter}.json"
        launcher = [sys.executable, "-I", "-c", LAUNCHER, str(stats_path)]
        with open(os.devnull, "wb") as out, open(err_path, "wb") as err:
            subprocess.run(
                [*launcher, *(command or reconcile_command()), *argv],
                stdout=out,
                stderr=err,
                env=self.environment(),
                check=False,
            )
        stats = json.loads(stats_path.read_text())
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        return ProcessResult(
            tuple(args),
            int(stats["exit_code"]),
            float(stats["wall"]),
            float(stats["max_rss_kb"]) / 1024.0,
            report,
            err_path.read_text(errors="replace"),
        )

    def reconcile_ok(self, *args: str, command: Sequence[str] = ()) -> ProcessResult:
        """:meth:`reconcile`, raising when the run did not exit 0."""
        result = self.reconcile(*args, command=command)
        if result.exit_code != 0:
            errors = result.report.get("errors", [])[:3]
            raise RuntimeError(
                f"reconcile {' '.join(args)} exited {result.exit_code}: "
                f"{result.stderr.strip()[-500:]} {errors}"
            )
        return result


def answer_without_delay(em: EmulatorServer) -> None:
    """Send each answer as soon as it is written (``TCP_NODELAY`` on the emulator's sockets).

    The emulators write the headers and the body of an answer separately; with Nagle's algorithm
    on, the body then waits for the client's delayed ACK, about 40 ms per request on Linux. That
    would swamp the latency the bench sets and make "no latency" runs look remote-bound.
    """
    server = getattr(em, "_httpd", None)
    if server is not None:
        handler = server.RequestHandlerClass
        server.RequestHandlerClass = type(
            handler.__name__, (handler,), {"disable_nagle_algorithm": True}
        )


def reconcile_command() -> list[str]:
    """The installed ``reconcile`` console script, or the same entry point through this Python."""
    script = Path(sys.executable).parent / "reconcile"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from reconciler.cli import main; main()"]
