"""A strict local emulator of the Airtable Web API (one base, records, formulas, paging, limits).

Usage::

    em = AirtableEmulator(lockout=0.5)
    em.start()
    api = pyairtable.Api(em.token, endpoint_url=em.url)
    api.table(em.base_id, "Leads").all(formula="...")
    em.stop()

Scenarios are set up with the direct Python API (no HTTP, no rate limit, no log):
``add_table``, ``add_field``, ``rename_field``, ``field_id``, ``create``, ``update``,
``set_computed`` (a failed computation: ``FORMULA_ERROR``, ``NOT_A_NUMBER``, ``INFINITE``),
``delete``, ``get``, ``records``; limits with ``limiter``, ``monthly_limit`` /
``billing_limit_exceeded`` and ``clock``. See docs/fidelity-airtable.md for what is modelled.
"""

from __future__ import annotations

from reconciler.emulators.airtable.evaluate import compile_formula
from reconciler.emulators.airtable.formula import FormulaError
from reconciler.emulators.airtable.schema import FIELD_TYPES, LEADS_FIELDS, AirtableError
from reconciler.emulators.airtable.server import AirtableEmulator
from reconciler.emulators.airtable.values import FORMULA_ERROR, INFINITE, NOT_A_NUMBER
from reconciler.emulators.airtable.workspace import DEFAULT_COLLABORATORS

__all__ = [
    "DEFAULT_COLLABORATORS",
    "FIELD_TYPES",
    "FORMULA_ERROR",
    "INFINITE",
    "LEADS_FIELDS",
    "NOT_A_NUMBER",
    "AirtableEmulator",
    "AirtableError",
    "FormulaError",
    "compile_formula",
]
