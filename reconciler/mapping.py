"""Mappings: which remote table syncs with which local table, field by field (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Which way a field may travel."""

    PULL = "pull"
    PUSH = "push"
    BOTH = "both"


class Kind(StrEnum):
    """The value type of a field, which fixes its canonical form (see ``values``)."""

    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    JSON = "json"


class Merge(StrEnum):
    """What happens when a field changed on both sides since the last sync."""

    NEWER = "newer"  # the side with the newer modification time wins
    UNION = "union"  # JSON arrays: both sides end with the union, stable order, no duplicates


@dataclass(frozen=True)
class FieldSpec:
    """One mapped field: remote name, local column, type, direction, merge rule."""

    remote: str
    column: str
    kind: Kind = Kind.TEXT
    direction: Direction = Direction.PULL
    merge: Merge = Merge.NEWER
    json_as_text: bool = False  # the remote keeps this JSON value as a TEXT field

    @property
    def pulls(self) -> bool:
        """Whether remote values may be written locally."""
        return self.direction in (Direction.PULL, Direction.BOTH)

    @property
    def pushes(self) -> bool:
        """Whether local values may be written to the remote."""
        return self.direction in (Direction.PUSH, Direction.BOTH)


@dataclass(frozen=True)
class Mapping:
    """A remote table or object kept in sync with a local table.

    Attributes:
        name: the mapping's name (report key, ``--mapping`` value, lock and state key).
        remote: ``airtable`` or ``twenty``.
        remote_table: Airtable table name or id, or Twenty object plural name.
        local_table: the Postgres table.
        key_column: the local column holding the remote record id.
        fields: the mapped fields.
        create_remote: whether local rows without a remote id are created remotely.
        modified_field: the remote field carrying the record's modification time.
    """

    name: str
    remote: str
    remote_table: str
    local_table: str
    key_column: str
    fields: tuple[FieldSpec, ...]
    create_remote: bool = False
    modified_field: str = "lastModifiedTime"

    @property
    def columns(self) -> list[str]:
        """The local columns of every mapped field."""
        return [f.column for f in self.fields]

    @property
    def push_fields(self) -> tuple[FieldSpec, ...]:
        """The fields whose direction allows pushing."""
        return tuple(f for f in self.fields if f.pushes)

    def field(self, column: str) -> FieldSpec:
        """The field mapped to a local column."""
        for spec in self.fields:
            if spec.column == column:
                return spec
        raise KeyError(column)


def _f(
    remote: str,
    column: str,
    kind: Kind = Kind.TEXT,
    direction: Direction = Direction.PULL,
    merge: Merge = Merge.NEWER,
    json_as_text: bool = False,
) -> FieldSpec:
    return FieldSpec(remote, column, kind, direction, merge, json_as_text)


_T, _N, _I, _B, _D, _J = (
    Kind.TEXT,
    Kind.NUMBER,
    Kind.INTEGER,
    Kind.BOOLEAN,
    Kind.DATETIME,
    Kind.JSON,
)
_BOTH = Direction.BOTH

LEADS = Mapping(
    name="leads",
    remote="airtable",
    remote_table="Leads",
    local_table="leads",
    key_column="airtable_record_id",
    modified_field="lastModifiedTime",
    create_remote=False,
    fields=(
        _f("First Name", "first_name"),
        _f("Last Name", "last_name"),
        _f("Email", "email"),
        _f("Phone", "phone"),
        _f("Company", "company"),
        _f("Title", "title"),
        _f("ICP Score", "icp_score", _N),
        _f("Status", "status"),
        _f("Campaign Name", "campaign_name"),
        _f("Lead Source", "lead_source"),
        _f("Form ID", "form_id"),
        _f("SMS Sent Count", "sms_sent_count", _I),
        _f("SMS Sequence Position", "sms_sequence_position", _I),
        _f("SMS Last Sent At", "sms_last_sent_at", _D),
        _f("Booked", "booked", _B),
        _f("Booked At", "booked_at", _D),
        _f("SMS Stop", "sms_stop", _B),
        _f("Processing Status", "processing_status", _T, _BOTH),
        _f("Campaign ID", "campaign_id", _T, _BOTH),
        _f("Claimed By", "claimed_by", _T, _BOTH),
        _f("Claimed At", "claimed_at", _D, _BOTH),
        _f("Notes", "notes", _T, _BOTH),
    ),
)

_U = Merge.UNION

REP_PROGRESSIONS = Mapping(
    name="rep_progressions",
    remote="twenty",
    remote_table="repProgressions",
    local_table="rep_progressions",
    key_column="twenty_id",
    modified_field="updatedAt",
    create_remote=True,
    fields=(
        _f("name", "name", _T, _BOTH),
        _f("workspaceMemberId", "workspace_member_id", _T, _BOTH),
        _f("totalXp", "total_xp", _N, _BOTH),
        _f("currentLevel", "current_level", _N, _BOTH),
        _f("closedDeals", "closed_deals", _N, _BOTH),
        _f("streakDays", "streak_days", _N, _BOTH),
        _f("currentRank", "current_rank", _T, _BOTH),
        _f("badges", "badges", _J, _BOTH, json_as_text=True),
        _f("efficiencyMetrics", "efficiency_metrics", _J, _BOTH, json_as_text=True),
        _f("completedModules", "completed_modules", _J, _BOTH, _U, json_as_text=True),
        _f("certifications", "certifications", _J, _BOTH, _U, json_as_text=True),
        _f("defeatedBosses", "defeated_bosses", _J, _BOTH, _U, json_as_text=True),
        _f("passedExams", "passed_exams", _J, _BOTH, _U, json_as_text=True),
        _f("lastActivityDate", "last_activity_date", _D, _BOTH),
    ),
)

BUILTIN_MAPPINGS: tuple[Mapping, ...] = (LEADS, REP_PROGRESSIONS)
