"""The reconciler's exceptions, one root and a small tree; each maps to one exit code.

    ReconcilerError                 (exit 3 unless a subclass says otherwise)
    ├── UsageError                  exit 2: bad option value, unreadable config, missing credentials
    ├── UnavailableError            exit 3: the run could not proceed
    │   ├── DatabaseError           database unreachable or lost mid-run
    │   ├── SchemaNotMigrated       the database lacks the reconciler's schema
    │   ├── RemoteUnavailable       a remote could not be reached after retries
    │   ├── AuthError               a remote refused the credentials
    │   └── MappingError            one mapping cannot proceed as configured or as the remote
    │                               answers (a wrong modified field, a used-up plan, a server
    │                               that lacks a feature); the others go on

Record-level problems are not exceptions that escape a run: they become entries in the report.
A run that finds the lock held is not an error either: its report says ``locked`` (exit 4).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_LOCKED = 4


class ReconcilerError(Exception):
    """Root of every error the CLI turns into an exit code."""

    exit_code = EXIT_UNAVAILABLE


class UsageError(ReconcilerError):
    """A bad option value, an unreadable configuration, or missing credentials."""

    exit_code = EXIT_USAGE


class UnavailableError(ReconcilerError):
    """The run could not proceed."""


class DatabaseError(UnavailableError):
    """The database is unreachable, or was lost mid-run."""


class SchemaNotMigrated(UnavailableError):
    """The database does not carry the reconciler's schema at the current version."""


class RemoteUnavailable(UnavailableError):
    """A remote API could not be reached, or kept failing after retries."""


class AuthError(UnavailableError):
    """A remote API refused the credentials."""


class MappingError(UnavailableError):
    """One mapping cannot proceed: the message names what is wrong and the fix.

    Raised where retrying cannot help (a "Last modified time" field that does not watch the
    pulled fields, a monthly plan limit used up, a server without batch upsert). The run reports
    it for that mapping, goes on with the others, and exits 3.
    """


class RecordError(Exception):
    """One record cannot be processed; it fails alone and is reported.

    Args:
        message: what is wrong, for the report.
        retryable: False for validation errors that will not heal by themselves.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
