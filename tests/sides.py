"""One remote and its mapping, so an end-to-end test can run the same against both remotes
(the ``side`` fixture in ``conftest.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tests.helpers import lead_fields, progression_fields, rows, twenty_writes

M = "rep_progressions"


class Side:
    """One remote and its mapping, so a window test runs the same against both."""

    def __init__(self, name: str, em: Any) -> None:
        self.name, self.em = name, em
        self.table = "leads" if name == "leads" else M
        self.key = "airtable_record_id" if name == "leads" else "twenty_id"

    def create(self, i: int, at: datetime) -> str:
        """A remote record stamped ``at``; returns its id."""
        if self.name == "leads":
            return str(self.em.create("Leads", lead_fields(i), modified_at=at)["id"])
        return str(self.em.create(progression_fields(i), updated_at=at)["id"])

    def edit(self, rid: str, value: str, at: datetime | None = None) -> None:
        """Edit a text field (Notes / name) remotely, stamped ``at`` or the server clock."""
        if self.name == "leads":
            self.em.update("Leads", rid, {"Notes": value}, modified_at=at)
        else:
            self.em.update(rid, {"name": value}, updated_at=at)

    def local_ids(self, db: sa.Engine) -> set[str]:
        """Remote ids present locally."""
        return {str(r[self.key]) for r in rows(db, self.table)}

    def local_text(self, db: sa.Engine, rid: str) -> Any:
        """The local value of the edited text field."""
        column = "notes" if self.name == "leads" else "name"
        return rows(db, self.table, f"{self.key} = '{rid}'")[0][column]

    def remote_text(self, rid: str) -> Any:
        """The remote value of the edited text field."""
        if self.name == "leads":
            return self.em.get("Leads", rid)["fields"].get("Notes")
        return self.em.get(rid)["name"]

    def writes(self) -> int:
        """Write requests the remote received."""
        if self.name == "leads":
            return sum(1 for r in self.em.requests if r.method == "PATCH")
        return len(twenty_writes(self.em))
