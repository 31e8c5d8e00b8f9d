"""A strict local emulator of Twenty CRM's REST API, for tests and benchmarks."""

from __future__ import annotations

from reconciler.emulators.twenty.schema import REP_PROGRESSION_FIELDS, TwentyError
from reconciler.emulators.twenty.server import TwentyEmulator

__all__ = ["REP_PROGRESSION_FIELDS", "TwentyEmulator", "TwentyError"]
