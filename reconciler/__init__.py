"""reconciler: two-way sync between Airtable, Twenty CRM and Postgres."""

from __future__ import annotations

__version__ = "0.1.0"
