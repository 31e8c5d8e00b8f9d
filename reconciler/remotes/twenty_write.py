"""Batch writes to Twenty: upserts split until a refused record fails alone, and servers that
predate REST batch upsert told apart from a refused record.

A server older than REST upsert does not read ``?upsert=true``: its create-many handler checks
each id with ``repository.exists`` and answers 400 ``Record already exists``
(``api/rest/core/handlers/rest-api-create-many.handler.ts``, the ``handle`` path, e.g. at commit
``75e796bb``; the newer ``commonHandle`` path reads the flag with ``parseUpsertRestRequest``). A
push reads every id it writes to just before, so that answer for a batch holding a record just
read means the server cannot update, not that the record is wrong. Such a server still creates
new ids, so those go on being created while the updates wait, and the mapping ends with one error
saying what the server lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.errors import MappingError
from reconciler.records import WriteResult
from reconciler.remotes.base import PushItem, Rejected
from reconciler.remotes.isolation import Once, Write, through_server_errors

ALREADY_EXISTS = "Record already exists"


class _NoUpsert(Exception):
    """The server answered as one without batch upsert."""


class BatchWriter:
    """Writes batches through ``send`` (one upsert request each).

    Args:
        send: sends one batch and returns one result per item; raises ``Rejected``, or
            ``RemoteUnavailable`` when its retries run out.
        where: the server and endpoint, for the message naming what the server lacks.
        once: inside it, a 5xx answer is not retried (the parts of a batch the server kept
            failing).
    """

    def __init__(self, send: Write, where: str, once: Once) -> None:
        self._send = send
        self._where = where
        self._once = once
        self.no_upsert = False
        self.waiting = 0  # updates left pending because the server cannot upsert

    def write(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        """One result per item; an update on a server without upsert gets an empty result (not
        written, not failed: it stays pending for a later run)."""
        if not self.no_upsert:
            try:
                return through_server_errors(batch, self._isolating, self._once)
            except _NoUpsert:
                self.no_upsert = True
        return self._creates_only(batch)

    def lacking(self) -> MappingError | None:
        """The error to end the mapping with, once the server showed it cannot upsert."""
        if not self.no_upsert:
            return None
        return MappingError(
            f"Twenty cannot update records: this server has no batch upsert (POST {self._where}"
            f"?upsert=true ignores the flag and answered {ALREADY_EXISTS!r} for records that "
            "exist); upgrade the Twenty server to a release with REST batch upsert. New records "
            f"are still created; {self.waiting} update(s) wait for the upgrade"
        )

    def _creates_only(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        new = [i for i in batch if i.current is None]
        kept = [i for i in batch if i.current is not None]
        self.waiting += len(kept)
        results = through_server_errors(new, self._isolating, self._once) if new else []
        return results + [WriteResult(i.local_id) for i in kept]

    def _isolating(self, batch: Sequence[PushItem]) -> list[WriteResult]:
        """Send a batch; when it is refused whole, split it until the bad record fails alone
        (Twenty validates a batch as a whole: one bad value sinks the others)."""
        try:
            return self._send(batch)
        except Rejected as exc:
            if _lacks_upsert(exc, batch):
                raise _NoUpsert from None
            if len(batch) == 1:
                return [WriteResult(batch[0].local_id, error=str(exc), retryable=_heals(exc))]
        middle = len(batch) // 2
        return self._isolating(batch[:middle]) + self._isolating(batch[middle:])


def _lacks_upsert(exc: Rejected, batch: Sequence[PushItem]) -> bool:
    """Whether a refusal says the server cannot upsert: "already exists" for a batch holding a
    record read (live) just before the write."""
    if exc.status != 400 or ALREADY_EXISTS not in str(exc):
        return False
    return any(i.current is not None and not i.current.deleted for i in batch)


def _heals(exc: Rejected) -> bool:
    """Whether the same record may go through in a later run. "Already exists" for a create
    means an earlier attempt landed unrecorded: the next run reads it and writes it as an
    update. Anything else refused (a bad value, a record too large) needs a change first."""
    return exc.status >= 500 or ALREADY_EXISTS in str(exc)
