"""The push as the original plan did it: for every changed row, one GET of the remote record (to
skip it when the remote is newer) and one PATCH of that single record.

It talks to the emulators directly (pyairtable for Airtable, httpx for Twenty), reading the same
edited rows the reconciler pushes, so its request count is directly comparable with ours.
"""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from pyairtable import Api

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.emulators.twenty import TwentyEmulator
from reconciler.model import LEADS, REP_PROGRESSIONS, Mapping, canonical, parse_datetime, to_wire


def changed_rows(db: sa.Engine, mapping: Mapping, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The first ``count`` rows with a remote id: (remote id, wire values of the push fields)."""
    fields = mapping.push_fields
    columns = ", ".join([mapping.key_column, "updated_at", *(f.column for f in fields)])
    sql = (
        f"SELECT {columns} FROM {mapping.local_table} "
        f"WHERE {mapping.key_column} IS NOT NULL ORDER BY id LIMIT :n"
    )
    with db.connect() as conn:
        rows = conn.execute(sa.text(sql), {"n": count}).mappings().all()
    return [
        (
            str(row[mapping.key_column]),
            {f.remote: to_wire(f, canonical(f, row[f.column], from_remote=False)) for f in fields},
        )
        for row in rows
    ]


def push_airtable(em: AirtableEmulator, db: sa.Engine, count: int) -> int:
    """Push ``count`` leads one record at a time; returns the requests the emulator received."""
    before = len(em.requests)
    api = Api(em.token, endpoint_url=em.url)
    table = api.table(em.base_id, LEADS.remote_table)
    local_stamps = _stamps(db, LEADS, count)
    for remote_id, values in changed_rows(db, LEADS, count):
        current = table.get(remote_id)
        modified = parse_datetime(current["fields"][LEADS.modified_field])
        if modified > local_stamps[remote_id]:
            continue  # "skip when Airtable is newer"
        table.update(remote_id, values)
    api.session.close()
    return len(em.requests) - before


def push_twenty(em: TwentyEmulator, db: sa.Engine, count: int) -> int:
    """Push ``count`` rep progressions one record at a time; returns the requests received."""
    before = len(em.requests)
    path = f"/{REP_PROGRESSIONS.remote_table}"
    local_stamps = _stamps(db, REP_PROGRESSIONS, count)
    headers = {"Authorization": f"Bearer {em.token}"}
    with httpx.Client(base_url=em.url + "/rest", headers=headers) as client:
        for remote_id, values in changed_rows(db, REP_PROGRESSIONS, count):
            response = client.get(f"{path}/{remote_id}")
            response.raise_for_status()
            record = next(iter(response.json()["data"].values()))
            if parse_datetime(record["updatedAt"]) > local_stamps[remote_id]:
                continue
            client.patch(f"{path}/{remote_id}", json=values).raise_for_status()
    return len(em.requests) - before


def _stamps(db: sa.Engine, mapping: Mapping, count: int) -> dict[str, Any]:
    sql = (
        f"SELECT {mapping.key_column}, updated_at FROM {mapping.local_table} "
        f"WHERE {mapping.key_column} IS NOT NULL ORDER BY id LIMIT :n"
    )
    with db.connect() as conn:
        return {str(r[0]): r[1] for r in conn.execute(sa.text(sql), {"n": count})}
