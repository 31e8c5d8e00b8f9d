"""The bench's laboratory: a Postgres server, the emulators, and the real ``reconcile`` process.

Everything a scenario touches is here: a Postgres cluster of its own (made with the binaries the
``pgserver`` package ships, Postgres defaults, listening on 127.0.0.1 over TCP as a production
``DATABASE_URL`` does and on a unix socket as the embedded Postgres does), a fresh migrated
database per scenario (cloned from a template migrated once), the Airtable and Twenty emulators
running in this process as threads, switched between realistic conditions (latency and the
remotes' real rate limits) and fast ones (no latency, no limits), with the time each answer took
on the server's side recorded, and :meth:`Lab.reconcile`, which runs the installed ``reconcile``
command in a child process and measures its wall time and peak memory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.base import EmulatorServer, Request, Response, collection_paused
from reconciler.emulators.limits import SlidingWindowLimiter, TokenBucketLimiter
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.store.database import connect, migrate, sqlalchemy_url

TEMPLATE = "bench_template"
ENV_PREFIXES = ("RECONCILER_", "AIRTABLE_", "TWENTY_")
PG_USER = "pgserver"  # the unprivileged user the server runs as when the bench runs as root

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
        twenty_burst: Twenty's bucket capacity (the emulator's default: a minute's worth).
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
    latency=0.08, airtable_rate=5, airtable_lockout=30.0, twenty_per_minute=100, twenty_burst=100
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


class Cluster:
    """A Postgres cluster of the bench's own, with Postgres defaults (``fsync`` and
    ``synchronous_commit`` on), listening on 127.0.0.1 (TCP) and on a unix socket.

    It is made with the binaries of the ``pgserver`` package (a dependency of the tool), so it
    needs nothing a fresh machine lacks. As root, the server runs as the unprivileged user
    ``pgserver`` uses (created when missing). Stopped and removed by :meth:`stop`, or at exit.
    """

    def __init__(self) -> None:
        import pgserver

        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        # Outside any private temp folder: as root, the server's user must reach its folder.
        self.folder = Path(tempfile.mkdtemp(prefix="reconciler-bench-pg-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.socket_dir = self.folder / "sock"
        self.socket_dir.mkdir(mode=0o777)
        self.socket_dir.chmod(0o777)
        self.user = self._server_user()
        self.port = _free_port()
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "utf8")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.folder / "log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}",
            "start",
        )
        atexit.register(self.stop)

    def _server_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_USER)
        ensure_prefix_permissions(self.folder)
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, 0o055)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        shutil.chown(self.folder, PG_USER, PG_USER)
        return PG_USER

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / program), *args],
            user=self.user,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            log = self.folder / "log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.strip()} {detail}")

    def url(self, database: str, *, tcp: bool = True) -> str:
        """A ``postgresql://`` URL of a database: over TCP, or through the unix socket."""
        if tcp:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return (
            f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='')}"
            f"&port={self.port}"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self.data.exists():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class Postgres:
    """The bench's Postgres server with a migrated template database.

    Args:
        admin_url: an existing server's ``postgresql://`` URL to use instead of starting one
            (then TCP and unix-socket URLs are both that server's own kind of URL).
    """

    def __init__(self, admin_url: str | None = None) -> None:
        self.cluster = Cluster() if admin_url is None else None
        self.admin_url = admin_url or self.url_of("postgres")
        self._admin = sa.create_engine(sqlalchemy_url(self.admin_url), isolation_level="AUTOCOMMIT")
        self._template = f"{TEMPLATE}_{uuid.uuid4().hex[:8]}"
        self._execute(f"CREATE DATABASE {self._template}")
        engine = connect(self.url_of(self._template))
        migrate(engine)
        engine.dispose()

    def url_of(self, database: str, *, tcp: bool = True) -> str:
        """The ``postgresql://`` URL of a database on this server (over TCP by default)."""
        if self.cluster is not None:
            return self.cluster.url(database, tcp=tcp)
        head, sep, tail = self.admin_url.partition("/postgres?")
        if not sep:
            head, _, tail = self.admin_url.rpartition("/")
            return f"{head}/{database}"
        return f"{head}/{database}?{tail}"

    def transport(self, url: str) -> str:
        """How a URL reaches the server: ``TCP 127.0.0.1`` or ``unix socket``."""
        host = sa.engine.make_url(sqlalchemy_url(url))
        name = host.host or unquote(str(host.query.get("host", "")))
        return "unix socket" if not name or name.startswith("/") else f"TCP {name}"

    def setting(self, name: str) -> str:
        """A server setting as ``SHOW`` reports it."""
        with self._admin.connect() as conn:
            return str(conn.execute(sa.text(f"SHOW {name}")).scalar_one())

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        """A fresh migrated database; yields its name and drops it afterwards."""
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE {self._template}")
        try:
            yield name
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
        if self.cluster is not None:
            self.cluster.stop()

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(sa.text(sql))


class Served:
    """How long each answer took on the server's side: from the request's headers read to the
    answer written (latency, rate limit check, the emulator's work, encoding), per emulator,
    in the order the answers went out."""

    def __init__(self) -> None:
        self._times: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, em: EmulatorServer, seconds: float) -> None:
        """Note one answer of ``em``."""
        with self._lock:
            self._times.setdefault(id(em), []).append(seconds)

    def of(self, em: EmulatorServer) -> list[float]:
        """The answer times of ``em`` since it was last reset."""
        with self._lock:
            return list(self._times.get(id(em), []))

    def reset(self, em: EmulatorServer) -> None:
        """Forget the answer times of ``em``."""
        with self._lock:
            self._times.pop(id(em), None)


def time_answers(server: EmulatorServer, served: Served, route: Callable[[str], Any]) -> None:
    """Record in ``served`` how long each answer of a running ``server`` takes, for the
    emulator ``route`` names from the request's path."""
    httpd = getattr(server, "_httpd", None)
    if httpd is None:
        raise RuntimeError("the emulator is not running")
    handler: type[BaseHTTPRequestHandler] = httpd.RequestHandlerClass

    def timed(method: str) -> Callable[[BaseHTTPRequestHandler], None]:
        inner = getattr(handler, method)

        def serve(self: BaseHTTPRequestHandler) -> None:
            started = time.perf_counter()
            inner(self)
            target = route(self.path)
            if target is not None:
                served.add(target, time.perf_counter() - started)

        return serve

    methods = ("do_GET", "do_POST", "do_PATCH", "do_PUT", "do_DELETE")
    httpd.RequestHandlerClass = type(
        handler.__name__, (handler,), {name: timed(name) for name in methods}
    )


class AirtableBases(EmulatorServer):
    """Several Airtable bases behind one API URL, as in production: each base is an emulator
    of its own (its records, its request log, its own rate limit and lockout), and a request
    goes to the base its path names (``/v0/{base}/…``, ``/v0/meta/bases/{base}/tables``).

    Args:
        bases: the bases' emulators (not started; this server answers for them).
    """

    def __init__(self, bases: Sequence[AirtableEmulator]) -> None:
        super().__init__(token="")
        self.bases = {em.base_id: em for em in bases}

    def base_of(self, path: str) -> AirtableEmulator | None:
        """The base a request's path names, if it is one of these."""
        parts = [unquote(p) for p in path.split("?")[0].split("/")[1:]]
        if parts[:3] == ["v0", "meta", "bases"] and len(parts) > 3:
            return self.bases.get(parts[3])
        return self.bases.get(parts[1]) if parts[:1] == ["v0"] and len(parts) > 1 else None

    def handle(self, request: Request) -> Response | None:
        """The named base's own pipeline (faults, latency, auth, its limit, dispatch)."""
        em = self.base_of(request.path)
        return em.handle(request) if em is not None else Response(404, "NOT_FOUND")

    def log(self, request: Request, status: int) -> None:
        """Log in the named base's request log."""
        em = self.base_of(request.path)
        (em if em is not None else super()).log(request, status)

    def dispatch(self, request: Request) -> Response:  # pragma: no cover - handle() routes
        raise NotImplementedError

    def admit(self, now: float) -> Response | None:  # pragma: no cover - each base admits
        return None

    def error(self, status: int, kind: str, message: str) -> Response:
        """Airtable's error body."""
        return Response(status, {"error": {"type": kind, "message": message}})


class Lab:
    """Postgres, both emulators and a working folder; runs ``reconcile`` against them.

    Args:
        admin_url: an existing Postgres server to use instead of starting one.
    """

    def __init__(self, admin_url: str | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
        self.postgres = Postgres(admin_url)
        self.served = Served()
        self.airtable = AirtableEmulator(rate_limit=0, lockout=0.0, iterator_ttl=3600.0)
        self.twenty = TwentyEmulator(rate_per_minute=0)
        for em in (self.airtable, self.twenty):
            em.start()
            time_answers(em, self.served, lambda path, em=em: em)
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
    def scenario(self, *, tcp: bool = True) -> Iterator[sa.Engine]:
        """Empty remotes and a fresh database for one scenario, under fast conditions; runs
        reach the database over TCP unless ``tcp`` is False (then through the unix socket).

        Yields an engine on the scenario's database, for seeding and checks.
        """
        self.airtable.reset()
        self.twenty.reset()
        self.set_conditions(FAST)
        with self.postgres.fresh() as name:
            self.database_url = self.postgres.url_of(name, tcp=tcp)
            engine = sa.create_engine(sqlalchemy_url(self.database_url))
            try:
                yield engine
            finally:
                engine.dispose()

    def set_conditions(
        self, conditions: Conditions, airtables: Sequence[AirtableEmulator] = ()
    ) -> None:
        """Switch the emulators (``airtables`` besides the lab's own two) and the client's own
        pacing to these conditions."""
        self.conditions = conditions
        for em in (self.airtable, *airtables):
            em.latency = conditions.latency
            em.limiter = SlidingWindowLimiter(
                conditions.airtable_rate, 1.0, conditions.airtable_lockout
            )
        self.twenty.latency = conditions.latency
        self.twenty.limiter = TokenBucketLimiter(
            conditions.twenty_per_minute, conditions.twenty_burst
        )

    def reset_logs(self, *emulators: EmulatorServer) -> None:
        """Forget the requests and answer times the emulators have logged (default: both)."""
        for em in emulators or (self.airtable, self.twenty):
            em.reset_log()
            self.served.reset(em)

    # -- the real command ------------------------------------------------------------------------

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The child's environment: this process's, minus any reconciler setting, plus the
        lab's, plus ``extra``."""
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
        env.update(extra or {})
        return env

    def measure(self, argv: Sequence[str], env: dict[str, str] | None = None) -> ProcessResult:
        """Run a command in a child process (through the launcher); measure its wall time and
        peak memory. Its stdout is discarded; its report is not read."""
        self._counter += 1
        err_path = self.home / f"stderr-{self._counter}.txt"
        stats_path = self.home / f"stats-{self._counter}.json"
        launcher = [sys.executable, "-I", "-c", LAUNCHER, str(stats_path)]
        with open(os.devnull, "wb") as out, open(err_path, "wb") as err, collection_paused():
            subprocess.run(
                [*launcher, *argv],
                stdout=out,
                stderr=err,
                env=env if env is not None else self.environment(),
                check=False,
            )
        stats = json.loads(stats_path.read_text())
        return ProcessResult(
            tuple(argv),
            int(stats["exit_code"]),
            float(stats["wall"]),
            float(stats["max_rss_kb"]) / 1024.0,
            {},
            err_path.read_text(errors="replace"),
        )

    def reconcile(
        self, *args: str, command: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> ProcessResult:
        """Run ``reconcile ARGS`` in a child process; measure wall time and peak memory.

        Run commands write their report to a file of the working folder, which is read back.
        The wall time runs from spawning ``reconcile`` to reaping it (process start included).
        ``command`` replaces the ``reconcile`` command itself (an instrumented entry point);
        ``env`` adds variables to the lab's environment.
        """
        argv = list(args)
        report_path = self.home / f"report-{uuid.uuid4().hex[:12]}.json"
        is_run = not argv or argv[0].startswith("-") or argv[0] == "run"
        if is_run and "--report" not in argv:
            argv += ["--report", str(report_path)]
        result = self.measure([*(command or reconcile_command()), *argv], self.environment(env))
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        return ProcessResult(
            tuple(args), result.exit_code, result.wall, result.max_rss_mb, report, result.stderr
        )

    def reconcile_ok(
        self, *args: str, command: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> ProcessResult:
        """:meth:`reconcile`, raising when the run did not exit 0."""
        result = self.reconcile(*args, command=command, env=env)
        if result.exit_code != 0:
            errors = result.report.get("errors", [])[:3]
            raise RuntimeError(
                f"reconcile {' '.join(args)} exited {result.exit_code}: "
                f"{result.stderr.strip()[-500:]} {errors}"
            )
        return result


def reconcile_command() -> list[str]:
    """The installed ``reconcile`` console script, or the same entry point through this Python."""
    script = Path(sys.executable).parent / "reconcile"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from reconciler.cli import main; main()"]


def _free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
