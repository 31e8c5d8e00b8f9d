"""Settings, resolved once: flag > environment variable > config file > default.

Run options arrive from the CLI (Typer reads flags and their environment variables); everything
else is read here from the environment. Secrets are wrapped so they never show in a repr.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping as EnvMapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.model import Mapping, builtin_mappings

DEFAULT_AIRTABLE_URL = "https://api.airtable.com"
DEFAULT_TWENTY_URL = "https://api.twenty.com"


@dataclass(frozen=True)
class Secret:
    """A credential: its value is used, never shown."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs besides its options."""

    home: Path
    database_url: Secret | None
    airtable_token: Secret | None
    airtable_base_id: str | None
    airtable_api_url: str
    airtable_rate: float
    twenty_api_key: Secret | None
    twenty_api_url: str
    twenty_rate: float
    # A factory: the built-ins are parsed when settings are made, not when this module loads.
    mappings: tuple[Mapping, ...] = field(default_factory=builtin_mappings)
    retry_base_seconds: float = 0.5
    max_attempts: int = 8
    overlap_minutes: float = 2.0
    mass_delete_share: float = 0.10
    log_retention_days: int = 90  # change log entries older than this are removed

    @property
    def secrets(self) -> list[str]:
        """Every secret value, so tests and redaction can look for them."""
        return [
            s.value
            for s in (self.airtable_token, self.twenty_api_key, self.database_url)
            if s is not None and s.value
        ]


@dataclass(frozen=True)
class RunOptions:
    """The options of one run."""

    lookback: int = 20
    stage: str = "both"
    mappings: tuple[str, ...] = ()
    dry_run: bool = False
    full: bool = False
    allow_mass_delete: bool = False


def _number(env: EnvMapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _secret(env: EnvMapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "").strip()
    return Secret(value) if value else None


def load_settings(env: EnvMapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment; raises UsageError naming a bad variable."""
    env = os.environ if env is None else env
    home = Path(env.get("RECONCILER_HOME", "").strip() or ".reconciler")
    return Settings(
        home=home,
        database_url=_secret(env, "DATABASE_URL"),
        airtable_token=_secret(env, "AIRTABLE_TOKEN"),
        airtable_base_id=env.get("AIRTABLE_BASE_ID", "").strip() or None,
        airtable_api_url=(env.get("AIRTABLE_API_URL", "").strip() or DEFAULT_AIRTABLE_URL),
        airtable_rate=_number(env, "AIRTABLE_RATE_LIMIT", 5.0, minimum=0.1),
        twenty_api_key=_secret(env, "TWENTY_API_KEY"),
        twenty_api_url=(env.get("TWENTY_API_URL", "").strip() or DEFAULT_TWENTY_URL).rstrip("/"),
        twenty_rate=_number(env, "TWENTY_RATE_LIMIT", 100.0, minimum=1),
        retry_base_seconds=_number(env, "RECONCILER_RETRY_BASE_SECONDS", 0.5, minimum=0),
        max_attempts=int(_number(env, "RECONCILER_MAX_ATTEMPTS", 8, minimum=1)),
        overlap_minutes=_number(env, "RECONCILER_OVERLAP_MINUTES", 2.0, minimum=0),
        log_retention_days=int(_number(env, "RECONCILER_LOG_RETENTION_DAYS", 90, minimum=1)),
        mass_delete_share=_number(env, "RECONCILER_MASS_DELETE_SHARE", 0.10, minimum=0),
    )


def load_mappings(settings: Settings, path: Path) -> Settings:
    """The settings with the mappings of a config file applied over the configured ones.

    Raises:
        UsageError: naming the file and the offending key.
    """
    from reconciler.model import read_mappings  # the config reader loads pydantic: only now

    return dataclasses.replace(settings, mappings=read_mappings(path, settings.mappings))


def missing_credentials(mapping: Mapping, settings: Settings) -> list[str]:
    """The environment variables a mapping's remote needs but lacks."""
    if mapping.remote == "airtable":
        needed = {
            "AIRTABLE_TOKEN": settings.airtable_token,
            "AIRTABLE_BASE_ID": settings.airtable_base_id,
        }
    else:
        needed = {"TWENTY_API_KEY": settings.twenty_api_key}
    return [name for name, value in needed.items() if not value]


def select_mappings(options: RunOptions, settings: Settings) -> list[tuple[Mapping, str | None]]:
    """The mappings of this run, each with the reason it is skipped (None when it runs).

    Raises UsageError for an unknown mapping name, or when no selected mapping can run.
    """
    known = {m.name: m for m in settings.mappings}
    unknown = [n for n in options.mappings if n not in known]
    if unknown:
        raise UsageError(f"--mapping: unknown mapping {unknown[0]!r} (known: {', '.join(known)})")
    chosen = [known[n] for n in dict.fromkeys(options.mappings)] or list(settings.mappings)
    selected = []
    for mapping in chosen:
        missing = missing_credentials(mapping, settings)
        selected.append((mapping, f"not configured: {', '.join(missing)}" if missing else None))
    if all(reason is not None for _, reason in selected):
        needed = sorted({v for m, _ in selected for v in missing_credentials(m, settings)})
        raise UsageError(
            "no mapping can run: set " + ", ".join(needed) + " (see README, 'Connecting')"
        )
    return selected
