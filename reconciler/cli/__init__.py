"""The ``reconcile`` command line: a thin shell around the engine."""

from __future__ import annotations

from reconciler.cli import check, demo, history, log, run, status
from reconciler.cli.app import app, entry, main

__all__ = ["app", "check", "demo", "entry", "history", "log", "main", "run", "status"]
