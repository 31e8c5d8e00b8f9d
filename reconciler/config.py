"""Settings, resolved once: flag > environment variable > config file > default.

Run options arrive from the CLI (Typer reads flags and their environment variables); everything
else is read here from the environment. Secrets are wrapped so they never show in a repr.

Each mapping talks to its remote with its own credentials: a mapping may name its Airtable base
(``base``) and the variables holding its token or key (``token_env``, ``api_key_env``), and a
Twenty server (``api_url``). ``Settings.airtable_target`` / ``twenty_target`` resolve them, with
the ``AIRTABLE_*`` / ``TWENTY_*`` variables as defaults; ``missing_credentials`` names what a
mapping lacks. The settings keep a snapshot of the environment (never shown or compared), so
variables named by a config file read after the settings are found.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping as EnvMapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.model import Mapping, builtin_mappings
from reconciler.model.mapping import (
    AIRTABLE_PATH,
    TWENTY_PATH,
    api_root,
    api_url_problem,
    base_id_problem,
)

DEFAULT_AIRTABLE_URL = "https://api.airtable.com"
DEFAULT_TWENTY_URL = "https://api.twenty.com"
AIRTABLE_TOKEN = "AIRTABLE_TOKEN"  # the default variable of an Airtable mapping's token
AIRTABLE_BASE_ID = "AIRTABLE_BASE_ID"
TWENTY_API_KEY = "TWENTY_API_KEY"  # the default variable of a Twenty mapping's API key
DATABASE_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")  # DATABASE_URL's

# Upper bounds of the numeric variables: past them a value is a typo, and some would overflow
# a date or a database integer in the middle of a run.
HOUR_SECONDS = 3600.0
DAY_MINUTES = 1440.0
CENTURY_DAYS = 36_525


@dataclass(frozen=True)
class Secret:
    """A credential: its value is used, never shown."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class AirtableTarget:
    """Where one Airtable mapping sends its requests, and with which token.

    Attributes:
        token: the personal access token.
        token_env: the variable the token came from (for hints; never the value).
        base_id: the base (``app…``).
        api_url: the API's root URL (``/v0/…`` is appended).
        rate: requests per second: the environment's, lowered by the mapping's ``rate_limit``.
    """

    token: Secret
    token_env: str
    base_id: str
    api_url: str
    rate: float


@dataclass(frozen=True)
class TwentyTarget:
    """Where one Twenty mapping sends its requests, and with which API key.

    Attributes:
        api_key: the API key (sent as ``Authorization: Bearer …``).
        api_key_env: the variable the key came from (for hints; never the value).
        api_url: the server's root URL (``/rest/…`` is appended).
        rate: requests per minute: the environment's, lowered by the mapping's ``rate_limit``.
    """

    api_key: Secret
    api_key_env: str
    api_url: str
    rate: float


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
    max_clock_offset_minutes: float = 60.0  # a remote clock further off than this stops a mapping
    # The environment the settings were read from, for the variables a mapping names.
    env: EnvMapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def secrets(self) -> list[str]:
        """Every secret value any configured mapping (or the database) uses, each once.

        Tests and redaction look for these in everything the tool writes.
        """
        found = [self.airtable_token, self.twenty_api_key, self.database_url]
        found += [self.secret(name) for m in self.mappings for name in secret_names(m)]
        return list(dict.fromkeys(s.value for s in found if s is not None and s.value))

    def secret(self, name: str) -> Secret | None:
        """The value of the environment variable ``name`` as a Secret; None when unset or blank.

        The default variables resolve to the fields read at start-up (which callers may
        replace); any other name is looked up in the environment snapshot.
        """
        if name == AIRTABLE_TOKEN:
            return self.airtable_token
        if name == TWENTY_API_KEY:
            return self.twenty_api_key
        return _secret(self.env, name)

    def airtable_target(self, mapping: Mapping) -> AirtableTarget:
        """The token, base, URL and rate of an Airtable mapping.

        Raises:
            UsageError: the mapping is not an Airtable one, or lacks credentials (named).
        """
        _require(mapping, "airtable", self)
        token_env = mapping.token_env or AIRTABLE_TOKEN
        token, base_id = self.secret(token_env), mapping.base or self.airtable_base_id
        assert token is not None and base_id is not None  # _require checked both
        rate = _lowered(self.airtable_rate, mapping.rate_limit)
        return AirtableTarget(token, token_env, base_id, self.airtable_api_url, rate)

    def twenty_target(self, mapping: Mapping) -> TwentyTarget:
        """The API key, server URL and rate of a Twenty mapping.

        Raises:
            UsageError: the mapping is not a Twenty one, or lacks its API key (named).
        """
        _require(mapping, "twenty", self)
        key_env = mapping.api_key_env or TWENTY_API_KEY
        key = self.secret(key_env)
        assert key is not None  # _require checked it
        api_url = mapping.api_url or self.twenty_api_url
        return TwentyTarget(key, key_env, api_url, _lowered(self.twenty_rate, mapping.rate_limit))


@dataclass(frozen=True)
class RunOptions:
    """The options of one run."""

    lookback: int = 20
    stage: str = "both"
    mappings: tuple[str, ...] = ()
    dry_run: bool = False
    full: bool = False
    allow_mass_delete: bool = False
    skip_locked: bool = False  # a mapping another run holds is skipped instead of exiting 4


def _number(
    env: EnvMapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float = math.inf,
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum:g}, got {raw!r}")
    if value > maximum:
        raise UsageError(f"{name} must be at most {maximum:g}, got {raw!r}")
    return value


def _whole(
    env: EnvMapping[str, str], name: str, default: int, *, minimum: int, maximum: int
) -> int:
    value = _number(env, name, default, minimum=minimum, maximum=maximum)
    if not float(value).is_integer():
        raise UsageError(f"{name} must be a whole number, got {env[name].strip()!r}")
    return int(value)


def _api_url(env: EnvMapping[str, str], name: str, default: str, appended: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        return default
    problem = api_url_problem(value)
    if problem is not None:
        raise UsageError(f"{name} {problem}")
    return api_root(value, appended)


def _base_id(env: EnvMapping[str, str]) -> str | None:
    value = env.get(AIRTABLE_BASE_ID, "").strip()
    problem = base_id_problem(value) if value else None
    if problem is not None:
        raise UsageError(f"{AIRTABLE_BASE_ID} {problem}")
    return value or None


def _database_url(env: EnvMapping[str, str]) -> Secret | None:
    url = _secret(env, "DATABASE_URL")
    if url is not None and not url.value.startswith(DATABASE_SCHEMES):
        found = (
            f"it starts {url.value.partition('://')[0]}://" if "://" in url.value else "it has none"
        )
        raise UsageError(  # the URL itself is not quoted: it may hold a password
            f"DATABASE_URL must start with postgresql:// ({found}); unset it to use the "
            "embedded Postgres"
        )
    if url is not None and url.value.partition("://")[2].partition("?")[0].count("@") > 1:
        # The driver would take what follows the first @ for the host, and name that host,
        # with the rest of the password in it, in its error.
        raise UsageError(
            "DATABASE_URL holds more than one @: an @ in the user name or password must be "
            "written %40 (percent-encoded, as must : / ? # in them)"
        )
    return url


def usable_folder(path: Path, setting: str) -> Path:
    """``path`` as a folder this process can write in, created when missing.

    Raises:
        UsageError: naming the setting it comes from (``RECONCILER_HOME``, ``--report``), the
            folder and what to do.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"{setting}: cannot create the folder {path} ({reason}); choose a folder this user "
            "can write"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{setting}: cannot write in {path}; choose a folder this user can write")
    return path


# What the embedded Postgres's folder may hold: pg_ctl starts the server through the shell, with
# the folder in its options unquoted (pgserver passes ``-o "-k <folder>"``), so a space or a
# shell character there stops the server from starting ("invalid argument"), a comma splits it
# in two (``-k`` takes a list of folders), and in the URL pgserver gives, the folder is the
# ``host`` parameter, where a ``+`` reads as a space and a ``%`` as an escape.
_PGDATA_RE = re.compile(r"[\w./~@-]+")


def embedded_folder(home: Path) -> Path:
    """The embedded Postgres's folder (``home/pg``), usable by this process and by the server.

    Raises:
        UsageError: naming ``RECONCILER_HOME``, the folder and what to do.
    """
    path = home / "pg"
    where = path.resolve()
    if not _PGDATA_RE.fullmatch(str(where)):
        raise UsageError(
            f"RECONCILER_HOME: the embedded Postgres cannot start in {str(where)!r}: its "
            "server's start command cannot carry a space or a shell character in a path; "
            "choose a folder of letters, digits and - _ . / ~ @ only, or set DATABASE_URL"
        )
    return usable_folder(path, "RECONCILER_HOME")


def _secret(env: EnvMapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "").strip()
    return Secret(value) if value else None


def load_settings(env: EnvMapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment; raises UsageError naming a bad variable."""
    env = os.environ if env is None else env
    # ``~`` as a shell would read it: an environment file (cron's, systemd's) passes it as it is.
    home = Path(env.get("RECONCILER_HOME", "").strip() or ".reconciler").expanduser()
    return Settings(
        home=home,
        database_url=_database_url(env),
        airtable_token=_secret(env, AIRTABLE_TOKEN),
        airtable_base_id=_base_id(env),
        airtable_api_url=_api_url(env, "AIRTABLE_API_URL", DEFAULT_AIRTABLE_URL, AIRTABLE_PATH),
        airtable_rate=_number(env, "AIRTABLE_RATE_LIMIT", 5.0, minimum=0.1),
        twenty_api_key=_secret(env, TWENTY_API_KEY),
        twenty_api_url=_api_url(env, "TWENTY_API_URL", DEFAULT_TWENTY_URL, TWENTY_PATH),
        twenty_rate=_number(env, "TWENTY_RATE_LIMIT", 100.0, minimum=1),
        retry_base_seconds=_number(
            env, "RECONCILER_RETRY_BASE_SECONDS", 0.5, minimum=0, maximum=HOUR_SECONDS
        ),
        max_attempts=_whole(env, "RECONCILER_MAX_ATTEMPTS", 8, minimum=1, maximum=1000),
        overlap_minutes=_number(
            env, "RECONCILER_OVERLAP_MINUTES", 2.0, minimum=0, maximum=DAY_MINUTES
        ),
        log_retention_days=_whole(
            env, "RECONCILER_LOG_RETENTION_DAYS", 90, minimum=1, maximum=CENTURY_DAYS
        ),
        mass_delete_share=_number(env, "RECONCILER_MASS_DELETE_SHARE", 0.10, minimum=0, maximum=1),
        max_clock_offset_minutes=_number(
            env, "RECONCILER_MAX_CLOCK_OFFSET_MINUTES", 60.0, minimum=1, maximum=DAY_MINUTES
        ),
        env=dict(env),
    )


def load_mappings(settings: Settings, path: Path) -> Settings:
    """The settings with the mappings of a config file applied over the configured ones.

    Raises:
        UsageError: naming the file and the offending key.
    """
    from reconciler.model import read_mappings  # the config reader loads pydantic: only now

    # ``~`` as a shell would read it: RECONCILER_CONFIG from an environment file keeps it.
    found = read_mappings(path.expanduser(), settings.mappings)
    return dataclasses.replace(settings, mappings=found)


def secret_names(mapping: Mapping) -> list[str]:
    """The environment variables holding a mapping's secrets (its token or API key)."""
    if mapping.remote == "airtable":
        return [mapping.token_env or AIRTABLE_TOKEN]
    return [mapping.api_key_env or TWENTY_API_KEY]


def unusable_credentials(mapping: Mapping, settings: Settings) -> list[str]:
    """What is wrong with a mapping's secrets, one line per variable (the values are never
    quoted). A token goes into a request header, which ``http.client`` encodes as Latin-1 (a
    character beyond it cannot be sent at all) and where a control character is refused, and
    real tokens and API keys are printable ASCII; a token copied from a document may carry a
    typographic character (an ellipsis, a curly quote, a non-breaking space). Nor does a token
    begin and end with a quote: an env file read by ``docker run --env-file`` keeps the quotes
    around a value, which a shell or systemd would take off. Nor does one hold a space: one
    copied with the header's ``Bearer`` would be sent as ``Bearer Bearer …``."""
    problems = []
    for name in secret_names(mapping):
        secret = settings.secret(name)
        value = "" if secret is None else secret.value
        if not (value.isascii() and value.isprintable()):
            problems.append(
                f"{name} holds a character no token has (tokens are printable ASCII): "
                "copy the token again"
            )
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            problems.append(
                f"{name} is in quotes, which are not part of a token: set it without them "
                "(an env file read by docker --env-file keeps them)"
            )
        elif value.lower().startswith("bearer "):
            problems.append(
                f"{name} starts with 'Bearer ', which the tool sends itself: set the token alone"
            )
        elif " " in value:
            problems.append(f"{name} holds a space, which no token has: copy the token again")
    return problems


def missing_credentials(mapping: Mapping, settings: Settings) -> list[str]:
    """The environment variables a mapping needs but lacks, e.g. ``["SALES_AIRTABLE_TOKEN"]``.

    An Airtable mapping needs its token variable and, unless it names its ``base``,
    ``AIRTABLE_BASE_ID``; a Twenty mapping needs its API key variable.
    """
    missing = [name for name in secret_names(mapping) if settings.secret(name) is None]
    if mapping.remote == "airtable" and mapping.base is None and not settings.airtable_base_id:
        missing.append(AIRTABLE_BASE_ID)
    return missing


def _require(mapping: Mapping, remote: str, settings: Settings) -> None:
    if mapping.remote != remote:
        raise UsageError(f"mapping {mapping.name!r} is for {mapping.remote}, not {remote}")
    missing = missing_credentials(mapping, settings)
    if missing:
        raise UsageError(f"mapping {mapping.name!r}: not configured: {', '.join(missing)}")


def _lowered(rate: float, budget: float | None) -> float:
    """A mapping's own budget may only lower the remote's rate, never raise it."""
    return rate if budget is None else min(rate, budget)


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
        unusable = [] if missing else unusable_credentials(mapping, settings)
        if unusable:
            raise UsageError(unusable[0])
        selected.append((mapping, f"not configured: {', '.join(missing)}" if missing else None))
    if all(reason is not None for _, reason in selected):
        needed = sorted({v for m, _ in selected for v in missing_credentials(m, settings)})
        raise UsageError(
            "no mapping can run: set " + ", ".join(needed) + " (see README, 'Connecting')"
        )
    return selected
