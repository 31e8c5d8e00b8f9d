"""What a run report says about each of its mappings: one word, the same everywhere.

Read from the JSON report (a fresh one, or one stored in ``reconciler.runs``), so the CI step
summary and ``reconcile status`` judge a mapping alike. Imports nothing: the renderer and the
status command both use it.
"""

from __future__ import annotations

from typing import Any

OK = "ok"  # every record went through
PARTIAL = "partial"  # the mapping ran; some records failed (listed in errors, retried later)
FAILED = "failed"  # the mapping could not proceed, or the run stopped on a fatal error
STOPPED = "stopped"  # the run was stopped by a signal: the mapping may not have finished
SKIPPED = "skipped"  # not run: missing credentials, or locked by another run
LOCKED = "locked"  # the whole run found the lock held and did nothing

SUCCEEDED = (OK, PARTIAL)  # the mapping synced: its window was read and its changes sent
RUN_WIDE = "*"  # the mapping name of an error about the whole run (a stop by signal)


def run_failure(report: dict[str, Any]) -> str | None:
    """What stopped the run as a whole (the database, the lock, an internal error), or None.

    That is the report's ``message``, unless the message only names the first mapping that
    could not proceed (``"leads pull: …"``, as a failed run without a run-wide cause says why):
    that failure is the mapping's alone, and is in ``errors``.
    """
    message = report.get("message")
    stopped = [
        stopped_mapping(e["mapping"], e["stage"], e["message"])
        for e in report.get("errors") or []
        if not e.get("record")
    ]
    return None if message and any(message.startswith(s) for s in stopped) else message


def stopped_mapping(mapping: str, stage: str, message: str) -> str:
    """A failed run's message when a mapping could not proceed (and nothing stopped the run as
    a whole): ``leads pull: Airtable kept failing after retries: …``."""
    return f"{mapping} {stage}: {message}"


def mapping_errors(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The report's errors of one mapping (record errors and mapping-level ones)."""
    return [e for e in report.get("errors") or [] if e.get("mapping") == name]


def mapping_outcome(report: dict[str, Any], entry: dict[str, Any]) -> str:
    """The outcome of one mapping's entry in a run report.

    Args:
        report: the run report (``report_version`` 1).
        entry: one element of its ``mappings``.

    Returns:
        One of ``ok``, ``partial``, ``failed``, ``stopped``, ``skipped``, ``locked``.
    """
    if entry.get("skipped"):
        return SKIPPED
    if report.get("status") == LOCKED:
        return LOCKED
    errors = mapping_errors(report, entry["name"])
    if entry.get("failed") or run_failure(report) or any(e["record"] is None for e in errors):
        return FAILED
    if any(e.get("mapping") == RUN_WIDE for e in report.get("errors") or []):
        return STOPPED
    return PARTIAL if errors else OK
