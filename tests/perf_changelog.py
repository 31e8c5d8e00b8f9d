"""What the change log costs: a 50,000-lead pull with the change log against one without.

Not collected by pytest (no ``test_`` prefix). Run it by hand:

    .venv/bin/python -m tests.perf_changelog [--leads 50000] [--rounds 2]

The Airtable emulator runs in this process with no rate limit and no latency; each ``reconcile``
runs in a child process (so the emulator's threads do not share its interpreter) against its own
fresh database. The child with ``--null`` swaps the change log's methods for ``NullJournal``'s.
Both an insert pull (every lead new) and an update pull (every lead edited remotely) are measured;
the figures are the runs' ``duration_ms`` and the time spent inside the change log's methods.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.emulators.airtable import AirtableEmulator
from reconciler.store.database import connect, migrate, sqlalchemy_url
from tests.helpers import ago, lead_fields

TEMPLATE = "perf_template"

CHILD = """
import json, sys, time
from reconciler.engine.context import NullJournal
from reconciler.store.changelog import ChangeLog
spent = [0.0]
def timed(name):
    inner = getattr(NullJournal if "--null" in sys.argv else ChangeLog, name)
    def wrapper(self, *args):
        start = time.perf_counter()
        try:
            return inner(self, *args)
        finally:
            spent[0] += time.perf_counter() - start
    return wrapper
for name in ("pulled", "pushed", "skipped", "failed"):
    setattr(ChangeLog, name, timed(name))
from reconciler.cli import main
try:
    main(["--json", "--lookback", "600", "--stage", "pull", "-q"])
except SystemExit:
    pass
sys.stderr.write("JOURNAL_SECONDS " + str(spent[0]) + "\\n")
"""


def _database(admin: sa.Engine, url: str, template: str) -> str:
    name = f"perf_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    return _with_db(url, name)


def _with_db(url: str, name: str) -> str:
    head, _, tail = url.partition("/postgres?")
    return f"{head}/{name}?{tail}"


def _reconcile(em: AirtableEmulator, url: str, home: Path, *, null: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "AIRTABLE_"))}
    env.update(
        DATABASE_URL=url,
        RECONCILER_HOME=str(home),
        AIRTABLE_TOKEN=em.token,
        AIRTABLE_BASE_ID=em.base_id,
        AIRTABLE_API_URL=em.url,
        AIRTABLE_RATE_LIMIT="100000",
    )
    args = [sys.executable, "-c", CHILD, *(["--null"] if null else [])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    report = json.loads(done.stdout)
    spent = float(done.stderr.rsplit("JOURNAL_SECONDS ", 1)[1].split()[0])
    pull = report["mappings"][0]["pull"]
    return {
        "ms": report["duration_ms"],
        "journal_ms": round(spent * 1000),
        "written": report.get("change_log", {}).get("written", 0),
        "inserted": pull["inserted"],
        "updated": pull["updated"],
    }


def _summary(label: str, on: list[dict[str, Any]], off: list[dict[str, Any]]) -> None:
    with_log = statistics.median(r["ms"] for r in on)
    without = statistics.median(r["ms"] for r in off)
    inside = statistics.median(r["journal_ms"] for r in on)
    print(
        f"{label}: with change log {with_log:.0f} ms, without {without:.0f} ms, "
        f"difference {100 * (with_log - without) / without:+.1f}%; inside the change log "
        f"{inside:.0f} ms = {100 * inside / with_log:.1f}% of the run "
        f"({on[0]['written']} entries)"
    )


def main() -> None:
    """Seed, run both variants per round (alternating who goes first), print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="perf-changelog-pg-"))
    folder.chmod(0o755)
    server = pgserver.get_server(folder, cleanup_mode="delete")
    url = str(server.get_uri())
    admin = sa.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {TEMPLATE}"))
    engine = connect(_with_db(url, TEMPLATE))
    migrate(engine)
    engine.dispose()
    em = AirtableEmulator(rate_limit=0)
    em.start()
    stamp = ago(30)
    ids = [em.create("Leads", lead_fields(i), modified_at=stamp)["id"] for i in range(args.leads)]
    home = folder / "home"
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ("ins+", "ins-", "upd+", "upd-")}
    for round_no in range(args.rounds):
        order = (True, False) if round_no % 2 == 0 else (False, True)
        dbs = {null: _database(admin, url, TEMPLATE) for null in order}
        for null in order:
            runs["ins-" if null else "ins+"].append(_reconcile(em, dbs[null], home, null=null))
        for rid in ids:
            em.update("Leads", rid, {"Status": f"Round {round_no}", "Notes": f"edit {round_no}"})
        for null in order:
            runs["upd-" if null else "upd+"].append(_reconcile(em, dbs[null], home, null=null))
    em.stop()
    admin.dispose()
    print(json.dumps(runs, indent=1))
    _summary(f"insert pull of {args.leads} leads", runs["ins+"], runs["ins-"])
    _summary(f"update pull of {args.leads} leads", runs["upd+"], runs["upd-"])


if __name__ == "__main__":
    main()
