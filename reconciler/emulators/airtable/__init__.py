"""A strict local emulator of the Airtable Web API (one base, records, formulas, paging, limits).

Usage::

    em = AirtableEmulator(lockout=0.5)
    em.start()
    api = pyairtable.Api(em.token, endpoint_url=em.url)
    api.table(em.base_id, "Leads").all(formula="...")
    em.stop()
"""

from __future__ import annotations

from reconciler.emulators.airtable.evaluate import compile_formula
from reconciler.emulators.airtable.formula import FormulaError
from reconciler.emulators.airtable.schema import LEADS_FIELDS, AirtableError
from reconciler.emulators.airtable.server import AirtableEmulator

__all__ = [
    "LEADS_FIELDS",
    "AirtableEmulator",
    "AirtableError",
    "FormulaError",
    "compile_formula",
]
