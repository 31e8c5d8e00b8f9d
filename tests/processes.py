"""Helpers for tests that run ``reconcile`` as a real process or wait on a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.base import EmulatorServer

ENTRY = "from reconciler.cli import entry; entry()"  # the console script's own
ROOT = Path(__file__).resolve().parents[1]


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds of real time.

    Only for waiting on another process or server thread to make progress, never to let
    time pass.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def fault_taken(em: EmulatorServer) -> Callable[[], bool]:
    """A condition: every queued fault of the emulator has been consumed by a request."""
    return lambda: em.faults.pending() == 0


@dataclass
class Proc:
    """A ``reconcile`` process started by a test."""

    popen: subprocess.Popen[str]
    report_path: Path

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        """Wait until ``condition`` holds while the process runs; fail with its output if it
        exits first or the time runs out."""

        def ready() -> bool:
            if condition():
                return True
            if self.popen.poll() is not None:
                _, err = self.popen.communicate()
                raise AssertionError(
                    f"reconcile exited {self.popen.returncode} before {what}:\n{err}"
                )
            return False

        try:
            wait_until(ready, timeout, what)
        except AssertionError:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.communicate()
            raise

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to this process only."""
        self.popen.send_signal(sig)

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Wait for the exit; returns (code, stdout, stderr)."""
        out, err = self.popen.communicate(timeout=timeout)
        return self.popen.returncode, out, err

    @property
    def report(self) -> dict[str, Any]:
        """The JSON report the process wrote."""
        return dict(json.loads(self.report_path.read_text()))


def start_reconcile(report_path: Path, *args: str, env: dict[str, str] | None = None) -> Proc:
    """Start ``reconcile ARGS --report PATH`` with the test's environment (or ``env``)."""
    popen = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args, "--report", str(report_path)],
        cwd=ROOT,
        env=dict(os.environ if env is None else env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Proc(popen, report_path)


def scalar(db: sa.Engine, sql: str, **params: Any) -> Any:
    """The single value of a query."""
    with db.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def reconciler_backends(db: sa.Engine) -> list[int]:
    """Process ids of the Postgres backends serving a reconcile run on this database."""
    with db.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'reconciler' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return [int(r[0]) for r in result]
