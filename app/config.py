"""Typed configuration from the environment.

Every setting is one row of :data:`SETTINGS`: its ``CR_*`` environment variable, the parser
that turns the text into its type, its default, what it is for, and its bounds. The variables
are read and parsed once, at start-up; a bad value raises :class:`ConfigError` naming the
variable, so a misconfigured deployment stops before serving anything. README's configuration
table is :func:`markdown_table` (``consent-replay config --markdown``), and a test keeps them
equal. There is no default secret: the embedded default
generates its secrets into the instance folder (mode 0600) on first start.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qs, urlsplit


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


Parser: TypeAlias = Callable[[str, str], Any]
# A default that depends on settings read before it: given their values, gives the raw text.
Derived: TypeAlias = Callable[[Mapping[str, Any]], str]


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2}
_SIZE_UNITS |= {"g": 1024**3, "gib": 1024**3, "t": 1024**4, "tib": 1024**4}


_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def _parse_count(name: str, raw: str) -> int:
    """A large positive count with an optional decimal suffix: 200G, 5e11, 200_000_000_000."""
    text = raw.strip().lower().replace("_", "")
    unit = text[-1:] if text[-1:] in "kmgt" and text[-1:] else ""
    try:
        value = int(float(text[: len(text) - len(unit)]) * _COUNT_UNITS[unit])
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}={raw!r} is not a number (examples: 200G, 5e11)") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _parse_size(name: str, raw: str) -> int:
    text = raw.strip().lower().replace("_", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    if not number or unit not in _SIZE_UNITS:
        raise ConfigError(f"{name}={raw!r} is not a size (examples: 500M, 4GiB, 1048576)")
    try:
        value = int(float(number) * _SIZE_UNITS[unit])
    except (ValueError, OverflowError):  # OverflowError: "1e999" is infinite
        raise ConfigError(f"{name}={raw!r} is not a size (examples: 500M, 4GiB, 1048576)") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _user_path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _one_of(
    allowed: Mapping[str, str], shown: str, fold: Callable[[str], str] = str.lower
) -> Parser:
    """A parser accepting the keys of ``allowed`` (after ``fold``), giving their values."""

    def parse(name: str, raw: str) -> str:
        value = fold(raw)
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} must be {shown}")
        return allowed[value]

    return parse


def _check_database_url(name: str, raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in {"sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg"}:
        raise ConfigError(
            f"{name} must be a sqlite:// or postgresql:// URL (the psycopg driver), "
            f"got scheme {scheme!r}"
        )
    if scheme in {"postgres", "postgresql"}:
        # psycopg 3 is the driver we ship; a bare postgresql:// would pick psycopg2.
        raw = "postgresql+psycopg" + raw[len(scheme) :]
    return raw


def _check_broker_url(name: str, raw: str) -> str:
    scheme = urlsplit(raw).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "sqla+sqlite"}:
        raise ConfigError(
            f"{name} must be a redis://, amqp:// or filesystem:// URL, got scheme {scheme!r}"
        )
    return raw


_RATELIMIT_SCHEMES = {
    "memory",
    "redis",
    "rediss",
    "redis+unix",
    "redis+sentinel",
    "redis+cluster",
    "memcached",
    "mongodb",
    "mongodb+srv",
}


def _check_ratelimit_url(name: str, raw: str) -> str:
    # Checked here, or flask-limiter refuses it later with a traceback that names no variable.
    scheme = urlsplit(raw).scheme
    if "://" not in raw or scheme not in _RATELIMIT_SCHEMES:
        raise ConfigError(
            f"{name} must be a memory://, redis:// or memcached:// URL, got {scheme or raw!r}"
        )
    return raw


_SMTP_OPTIONS = {"starttls", "timeout", "cafile"}
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _check_smtp_url(name: str, raw: str) -> str:
    """smtp://[user:password@]host[:port][?starttls=true], or smtps:// (TLS from the start)."""
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigError(
            f"{name} must be smtp://[user:password@]host[:port] or smtps://…, "
            f"got scheme {parts.scheme!r}"
        )
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ConfigError(f"{name} has a port that is not a number") from None
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - _SMTP_OPTIONS
    if unknown:
        raise ConfigError(
            f"{name} has unknown options {sorted(unknown)}; known: {sorted(_SMTP_OPTIONS)}"
        )
    if "starttls" in options:
        _parse_bool(f"{name} option starttls", options["starttls"][-1])
    if "timeout" in options:
        timeout = _parse_int(f"{name} option timeout", options["timeout"][-1])
        if not 1 <= timeout <= 600:
            raise ConfigError(f"{name} option timeout={timeout} must be 1 to 600 seconds")
    if "cafile" in options and not Path(options["cafile"][-1]).is_file():
        raise ConfigError(f"{name} option cafile={options['cafile'][-1]!r} is not a file")
    return raw


def _check_mail_from(name: str, raw: str) -> str:
    address = raw.rsplit("<", 1)[-1].rstrip(">").strip()
    if not _EMAIL.match(address) or any(c in raw for c in "\r\n"):
        raise ConfigError(f"{name}={raw!r} is not an e-mail address")
    return raw.strip()


def _check_queue_prefix(name: str, raw: str) -> str:
    if len(raw) > 40 or not all(c.isalnum() or c in "-_." for c in raw):
        raise ConfigError(f"{name}={raw!r} may hold up to 40 letters, digits, '-', '_' or '.'")
    return raw


# S3 bucket naming rules: 3-63 lowercase letters, digits, dots and dashes, starting and ending
# with a letter or digit, not like an IP address (MinIO and AWS refuse anything else).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def _check_bucket(name: str, raw: str) -> str:
    if not _BUCKET.match(raw) or ".." in raw or _IPV4.match(raw):
        raise ConfigError(f"{name}={raw!r} is not a valid bucket name")
    return raw


def _check_public_url(name: str, raw: str) -> str:
    url = raw.rstrip("/")
    if urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc:
        raise ConfigError(f"{name}={url!r} must be an http(s) URL")
    return url


def _check_metrics_token(name: str, raw: str) -> str:
    if len(raw) < 24 or any(c.isspace() for c in raw):
        raise ConfigError(f"{name} must be at least 24 characters, without spaces")
    return raw


# The roles of SPEC §3 (app.models.Role, which this lowest layer may not import).
ROLE_NAMES = ("employee", "coach", "admin", "representative")


def _check_issuer(name: str, raw: str) -> str:
    # Kept exactly as given (a trailing slash included): ID tokens must name it the same way.
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name}={url!r} must be the provider's issuer URL (https://…)")
    return url


def _parse_role_map(name: str, raw: str) -> dict[str, str]:
    """``role=group,role=group,…`` into {group: role}; a role may have several groups."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        role, sep, group = (text.strip() for text in item.partition("="))
        if not sep or not group or role not in ROLE_NAMES:
            raise ConfigError(
                f"{name}: {item!r} must be ROLE=GROUP with ROLE one of {', '.join(ROLE_NAMES)} "
                "(example: employee=cc-agents,coach=cc-coaches)"
            )
        if mapping.get(group, role) != role:
            raise ConfigError(f"{name}: the group {group!r} is given two roles")
        mapping[group] = role
    if not mapping:
        raise ConfigError(f"{name} maps no group to a role")
    return mapping


def _check_claim_name(name: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_:/.\-]{1,200}", raw.strip()):
        raise ConfigError(f"{name}={raw!r} is not a claim name")
    return raw.strip()


def _check_secret_key(name: str, raw: str) -> str:
    if len(raw) < 32:
        raise ConfigError(f"{name} must be at least 32 characters")  # never echo a secret
    return raw


@dataclass(frozen=True)
class Setting:
    """One ``CR_*`` variable: the attribute it fills, its parser, default and description."""

    name: str
    attr: str  # the Settings attribute (pkcs11_pin_file is turned into pkcs11_pin)
    parse: Parser
    default: str | Derived | None  # raw text, parsed like a given value; None: unset
    what: str
    shown: str | None = None  # the default as README shows it, when it is not the raw text
    minimum: int | None = None
    maximum: int | None = None

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        return f"`{self.default}`" if isinstance(self.default, str) and self.default else "—"

    @property
    def description(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"{self.what} ({self.minimum} to {self.maximum})"
        if self.minimum is not None:
            return f"{self.what} (at least {self.minimum})"
        if self.maximum is not None:
            return f"{self.what} (at most {self.maximum})"
        return self.what

    def read(self, env: Mapping[str, str], earlier: Mapping[str, Any]) -> Any:
        """This setting's value from ``env`` (empty counts as unset), checked against bounds."""
        raw = env.get(self.name) or (
            self.default(earlier) if callable(self.default) else self.default
        )
        if raw is None:
            return None
        value = self.parse(self.name, raw)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.name}={value} is below the minimum of {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{self.name}={value} is above the maximum of {self.maximum}")
        return value


def _in_instance(filename: str) -> Derived:
    return lambda earlier: str(earlier["instance_dir"] / filename)


_S3 = "(required with `CR_STORE=s3`)"
_OIDC = "(required with `CR_OIDC_ISSUER`)"
_HSM = "with `CR_KEK_PROVIDER=pkcs11`:"

# In reading order: a derived default may use only the settings above it.
SETTINGS: tuple[Setting, ...] = (
    Setting("CR_INSTANCE_DIR", "instance_dir", _path, "./instance",
            "where the embedded default keeps its files (created if missing, mode 0700)"),
    Setting("CR_DATABASE_URL", "database_url", _check_database_url,
            lambda earlier: f"sqlite:///{earlier['instance_dir'] / 'consent-replay.db'}",
            "`postgresql://user:pass@host/db` in production",
            shown="SQLite in the instance folder"),
    Setting("CR_BROKER_URL", "broker_url", _check_broker_url, "filesystem://",
            "the task queue: `redis://host:6379/0` or `amqp://user:pass@host//`; the default "
            "needs no server"),
    Setting("CR_QUEUE_PREFIX", "queue_prefix", _check_queue_prefix, "",
            "prefix of the queue names, to share one broker between deployments"),
    Setting("CR_STORE", "store_kind", _one_of({"local": "local", "s3": "s3", "minio": "s3"},
                                              "'local' or 's3'"), "local",
            "`s3` for MinIO or any S3-compatible store"),
    Setting("CR_STORE_DIR", "store_dir", _path, _in_instance("objects"),
            "the local object folder", shown="`objects` in the instance folder"),
    Setting("CR_S3_ENDPOINT", "s3_endpoint", _text, None, f"`host:port` of MinIO {_S3}"),
    Setting("CR_S3_ACCESS_KEY", "s3_access_key", _text, None, f"MinIO access key {_S3}"),
    Setting("CR_S3_SECRET_KEY", "s3_secret_key", _text, None, f"MinIO secret key {_S3}"),
    Setting("CR_S3_BUCKET", "s3_bucket", _check_bucket, "consent-replay", "created if missing"),
    Setting("CR_S3_SECURE", "s3_secure", _parse_bool, "false", "use TLS to reach MinIO"),
    Setting("CR_S3_REGION", "s3_region", _text, None, "region, if your store needs one"),
    Setting("CR_KEYRING", "keyring_path", _path, _in_instance("keyring.json"),
            "the receipt-signing keys, and the key-encryption keys when `CR_KEK_PROVIDER=file` "
            "(mode 0600)", shown="`keyring.json` in the instance folder"),
    Setting("CR_KEK_PROVIDER", "kek_provider",
            _one_of({"file": "file", "pkcs11": "pkcs11"}, "'file' or 'pkcs11'"), "file",
            "where the key-encryption keys (KEKs) live: `file` (the keyring file) or `pkcs11` "
            "(a hardware security module)"),
    Setting("CR_PKCS11_MODULE", "pkcs11_module", _user_path, None,
            f"{_HSM} the HSM vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`"),
    Setting("CR_PKCS11_TOKEN", "pkcs11_token", _text, None, f"{_HSM} the token's label"),
    Setting("CR_PKCS11_PIN_FILE", "pkcs11_pin_file", _user_path, None,
            f"{_HSM} a file holding the user PIN (never the PIN itself in the environment)"),
    Setting("CR_SECRET_KEY", "secret_key", _check_secret_key, None,
            "signs CSRF tokens and the sign-in form's cookie (sessions themselves live on the "
            "server), at least 32 characters; generated into the instance folder when unset",
            shown="generated"),
    Setting("CR_PUBLIC_URL", "public_url", _check_public_url, "http://127.0.0.1:8000",
            "how users reach the app; issuer of receipts"),
    Setting("CR_SCRATCH_DIR", "scratch_dir", _path, _in_instance("scratch"),
            "the workers' private scratch space (plaintext lives only here, while a job runs)",
            shown="`scratch` in the instance folder"),
    Setting("CR_FFMPEG", "ffmpeg", _text, "ffmpeg",
            "the ffmpeg program the workers run: a name on `PATH` or a path"),
    Setting("CR_FFPROBE", "ffprobe", _text, "ffprobe",
            "the ffprobe program the workers run: a name on `PATH` or a path"),
    Setting("CR_TESSERACT", "tesseract", _text, "tesseract",
            "the tesseract program (with the `nor` and `eng` data) that reads a draft's screen "
            "for redaction suggestions: a name on `PATH` or a path; missing, suggestions fail "
            "and sharing still works"),
    Setting("CR_MAX_UPLOAD_BYTES", "max_upload_bytes", _parse_size, "4GiB",
            "hard upload ceiling per file, multipart or tus (admins set a lower policy limit; tus "
            "announces it as `Tus-Max-Size`)"),
    Setting("CR_MAX_DURATION_S", "max_duration_s", _parse_int, "14400",
            "longest accepted recording, in seconds", minimum=1),
    Setting("CR_MAX_WIDTH", "max_width", _parse_int, "7680",
            "widest accepted input video, in pixels", minimum=16, maximum=16384),
    Setting("CR_MAX_HEIGHT", "max_height", _parse_int, "4320",
            "tallest accepted input video, in pixels", minimum=16, maximum=16384),
    Setting("CR_MAX_FPS", "max_fps", _parse_int, "120",
            "highest accepted input frame rate", minimum=1, maximum=1000),
    Setting("CR_MAX_TOTAL_PIXELS", "max_total_pixels", _parse_count, "200G",
            "most work one video may ask for: width × height × frames per second × seconds "
            "(200G is about 1 h 43 min of 1920×1080 at 15 fps); checked when the draft is "
            "probed and again in the share job"),
    Setting("CR_FFMPEG_TIMEOUT_S", "ffmpeg_timeout_s", _parse_int, "3000",
            "an ffmpeg run is killed after this many seconds", minimum=5),
    Setting("CR_JOB_TIME_LIMIT_S", "job_time_limit_s", _parse_int, "3600",
            "a share job's hard time limit, in seconds", minimum=10),
    Setting("CR_VISIBILITY_TIMEOUT_S", "visibility_timeout_s", _parse_int,
            lambda earlier: str(earlier["job_time_limit_s"] * 2),
            "Redis redelivery delay, in seconds; must exceed the job limit", minimum=10,
            shown="twice the job limit"),
    Setting("CR_STALL_CHECK_S", "stall_check_s", _parse_int, "60",
            "how often (seconds) the scheduler re-sends jobs whose worker died",
            minimum=5, maximum=3600),
    Setting("CR_CLIENT_TIMEOUT_S", "client_timeout_s", _parse_int, "60",
            "a client that sends or reads nothing for this many seconds is disconnected (a "
            "resumable upload keeps the whole chunks it had sent, and its lock is freed)",
            minimum=5, maximum=3600),
    Setting("CR_SECURE_COOKIES", "secure_cookies", _parse_bool,
            lambda earlier: "true" if earlier["public_url"].startswith("https") else "false",
            "mark cookies `Secure`", shown="on for https public URLs"),
    Setting("CR_TRUSTED_PROXIES", "trusted_proxies", _parse_int, "0",
            "number of reverse proxies whose `X-Forwarded-*` to trust", minimum=0, maximum=5),
    Setting("CR_RATELIMIT_STORAGE_URL", "ratelimit_storage_url", _check_ratelimit_url,
            "memory://",
            "e.g. `redis://…` to share sign-in rate limits across web processes. Failed sign-ins "
            "are limited per account (5 a minute, 20 an hour) and per address (10 a minute, 50 "
            "an hour); successful ones never count, so agents behind one office address do not "
            "lock each other out at a shift's start"),
    Setting("CR_METRICS_TOKEN", "metrics_token", _check_metrics_token, None,
            "bearer token Prometheus sends to scrape `/metrics` (at least 24 characters); "
            "without it `/metrics` answers nobody", shown="— (metrics off)"),
    Setting("CR_LOG_LEVEL", "log_level",
            _one_of({v: v for v in ("DEBUG", "INFO", "WARNING", "ERROR")},
                    "DEBUG, INFO, WARNING or ERROR", fold=str.upper), "INFO",
            "`DEBUG`, `INFO`, `WARNING` or `ERROR`"),
    Setting("CR_SESSION_IDLE_MINUTES", "session_idle_minutes", _parse_int, "60",
            "a browser session unused this long ends", minimum=5, maximum=7 * 24 * 60),
    Setting("CR_SESSION_MAX_HOURS", "session_max_hours", _parse_int, "12",
            "a browser session ends this long after sign-in, however busy",
            minimum=1, maximum=30 * 24),
    Setting("CR_SMTP_URL", "smtp_url", _check_smtp_url, None,
            "`smtp://user:password@host:587?starttls=true`, or `smtps://…:465` (TLS from the "
            "start); options `timeout=` (s) and `cafile=` (a private CA). Sent by the workers "
            "only", shown="— (write `.eml` files to `instance/outbox/`)"),
    Setting("CR_MAIL_FROM", "mail_from", _check_mail_from,
            lambda earlier: f"consent-replay <no-reply@{urlsplit(earlier['public_url']).hostname}>",
            "the From of every e-mail", shown="`consent-replay <no-reply@HOST of CR_PUBLIC_URL>`"),
    Setting("CR_MAIL_RETRIES", "mail_retries", _parse_int, "8",
            "retries of a message the mail server refuses for now; then it is recorded as failed "
            "(admins see it on Users & teams)", minimum=0, maximum=50),
    Setting("CR_MAIL_RETRY_S", "mail_retry_s", _parse_int, "30",
            "the first retry's delay, doubled each time (at most an hour)",
            minimum=1, maximum=3600),
    Setting("CR_OIDC_ISSUER", "oidc_issuer", _check_issuer, None,
            "sign-in with the organisation's identity provider (OpenID Connect): its issuer URL "
            "(discovery at `/.well-known/openid-configuration`)", shown="— (no provider)"),
    Setting("CR_OIDC_CLIENT_ID", "oidc_client_id", _text, None,
            f"the client registered at the provider {_OIDC}"),
    Setting("CR_OIDC_CLIENT_SECRET", "oidc_client_secret", _text, None,
            f"that client's secret {_OIDC}"),
    Setting("CR_OIDC_ROLES_CLAIM", "oidc_roles_claim", _check_claim_name, "groups",
            "the ID token claim that lists the user's groups (Entra ID: `groups` or `roles`; "
            "Keycloak: `groups` with a group-membership mapper)"),
    Setting("CR_OIDC_ROLE_MAP", "oidc_role_map", _parse_role_map, None,
            "which group gives which role, e.g. `employee=cc-agents,coach=cc-coaches,"
            f"admin=cr-admins,representative=union`; a user in no mapped group or in groups of "
            f"two roles is refused {_OIDC}"),
    Setting("CR_PASSWORD_LOGIN", "password_login", _parse_bool, "true",
            "`false`: only the provider signs people in (API tokens still work)"),
    Setting("CR_OIDC_NAME", "oidc_name", _text, "your organisation",
            "the provider's name on the sign-in button"),
    Setting("CR_DEFAULT_LANGUAGE", "default_language",
            _one_of({"en": "en", "nb": "nb"}, "'en' or 'nb'"), "en",
            "the language of pages and messages when neither the person's choice nor the "
            "browser's `Accept-Language` names `en` or `nb`"),
)  # fmt: skip
BY_NAME = {setting.name: setting for setting in SETTINGS}


def markdown_table() -> str:
    """README's configuration table: one row per setting, in reading order."""
    rows = ["| variable | default | what |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {s.shown_default} | {s.description} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Settings:
    """Everything the web app, the worker and the CLI need to know about their deployment."""

    instance_dir: Path
    database_url: str
    broker_url: str
    queue_prefix: str
    store_kind: str  # "local" or "s3"
    store_dir: Path
    s3_endpoint: str | None
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_bucket: str
    s3_secure: bool
    s3_region: str | None
    keyring_path: Path
    kek_provider: str  # "file" (the keyring file) or "pkcs11" (an HSM)
    pkcs11_module: Path | None
    pkcs11_token: str | None
    pkcs11_pin: str | None = field(repr=False)
    secret_key: str = field(repr=False)
    scratch_dir: Path
    public_url: str
    ffmpeg: str  # the programs the workers run
    ffprobe: str
    tesseract: str
    max_upload_bytes: int
    max_duration_s: int
    max_width: int
    max_height: int
    max_fps: int
    max_total_pixels: int
    ffmpeg_timeout_s: int
    job_time_limit_s: int
    visibility_timeout_s: int
    stall_check_s: int
    client_timeout_s: int
    secure_cookies: bool
    log_level: str
    ratelimit_storage_url: str
    trusted_proxies: int
    metrics_token: str | None = field(default=None, repr=False)
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    # None: the embedded default, each message an .eml file in instance/outbox/.
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "consent-replay <no-reply@localhost>"
    mail_retries: int = 8
    mail_retry_s: int = 30
    # Sign-in with the organisation's identity provider (SPEC §15); None: no provider.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_roles_claim: str = "groups"
    oidc_role_map: dict[str, str] | None = None  # {group: role}
    password_login: bool = True
    oidc_name: str = "your organisation"
    default_language: str = "en"

    @property
    def session_cookie_name(self) -> str:
        # Under https the __Host- prefix: the browser then accepts it only Secure, for Path=/
        # and without a Domain, so no sibling host can set or overwrite it.
        return "__Host-cr_session" if self.secure_cookies else "cr_session"

    @property
    def embedded(self) -> bool:
        """True when every part runs without a server (the one-command default)."""
        return (
            self.database_url.startswith("sqlite")
            and self.broker_url.startswith(("filesystem", "sqla+sqlite"))
            and self.store_kind == "local"
        )

    def as_flask_config(self) -> dict[str, Any]:
        return {
            "SECRET_KEY": self.secret_key,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "SESSION_COOKIE_NAME": self.session_cookie_name,
            "SESSION_COOKIE_PATH": "/",
            "SESSION_COOKIE_DOMAIN": None,
            "PREFERRED_URL_SCHEME": "https" if self.secure_cookies else "http",
            "MAX_FORM_MEMORY_SIZE": 64 * 1024,
            "WTF_CSRF_TIME_LIMIT": None,
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_url,
            "RATELIMIT_HEADERS_ENABLED": True,
            "API_TITLE": "consent-replay",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
            "CR_SETTINGS": self,
        }


def _secret_from_instance(instance_dir: Path, filename: str) -> str:
    """Read a generated secret, creating it (mode 0600, never world-readable) on first start."""
    path = instance_dir / filename
    if not path.exists():
        # Written whole to a private temporary file, then linked into place: the link fails if
        # another process got there first, and nobody ever reads a half-written (empty) file.
        tmp = instance_dir / f".{filename}.{os.getpid()}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty; delete it to generate a new secret")
    return value


def _require(values: Mapping[str, Any], names: tuple[str, ...], condition: str) -> None:
    for name in names:
        if not values[BY_NAME[name].attr]:
            raise ConfigError(f"{name} is required when {condition}")


def _check_s3(values: dict[str, Any]) -> None:
    if values["store_kind"] != "s3":
        return
    _require(values, ("CR_S3_ENDPOINT", "CR_S3_ACCESS_KEY", "CR_S3_SECRET_KEY"), "CR_STORE=s3")
    endpoint = values["s3_endpoint"]
    if "://" in endpoint or "/" in endpoint:
        raise ConfigError(
            f"CR_S3_ENDPOINT={endpoint!r} must be host:port (set CR_S3_SECURE for TLS)"
        )


def _check_pkcs11(values: dict[str, Any]) -> None:
    """Turn the PIN file into the PIN; the PKCS#11 settings count only with that provider."""
    pin_file = values.pop("pkcs11_pin_file")
    if values["kek_provider"] != "pkcs11":
        values.update(pkcs11_module=None, pkcs11_token=None, pkcs11_pin=None)
        return
    names = ("CR_PKCS11_MODULE", "CR_PKCS11_TOKEN", "CR_PKCS11_PIN_FILE")
    _require({**values, "pkcs11_pin_file": pin_file}, names, "CR_KEK_PROVIDER=pkcs11")
    if not values["pkcs11_module"].is_file():
        raise ConfigError(f"CR_PKCS11_MODULE={str(values['pkcs11_module'])!r} is not a file")
    try:
        values["pkcs11_pin"] = pin_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"CR_PKCS11_PIN_FILE={str(pin_file)!r} cannot be read") from None
    if not values["pkcs11_pin"]:
        raise ConfigError(f"CR_PKCS11_PIN_FILE={str(pin_file)!r} is empty")


def _check_oidc(values: dict[str, Any]) -> None:
    names = ("CR_OIDC_CLIENT_ID", "CR_OIDC_CLIENT_SECRET", "CR_OIDC_ROLE_MAP")
    if values["oidc_issuer"]:
        _require(values, names, "CR_OIDC_ISSUER is set")
        return
    for name in names:
        if values[BY_NAME[name].attr]:
            raise ConfigError(f"{name} is set but CR_OIDC_ISSUER is not")
    if not values["password_login"]:
        raise ConfigError("CR_PASSWORD_LOGIN=false needs CR_OIDC_ISSUER: nobody could sign in")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment into :class:`Settings`, raising ConfigError naming a bad variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        values[setting.attr] = setting.read(env, values)
    values["instance_dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_s3(values)
    _check_pkcs11(values)
    _check_oidc(values)
    if values["visibility_timeout_s"] <= values["job_time_limit_s"]:
        # A shorter visibility timeout makes the broker hand a running job to a second worker.
        raise ConfigError(
            "CR_VISIBILITY_TIMEOUT_S must be longer than CR_JOB_TIME_LIMIT_S "
            f"({values['visibility_timeout_s']} <= {values['job_time_limit_s']})"
        )
    if values["secret_key"] is None:
        values["secret_key"] = _secret_from_instance(values["instance_dir"], "secret_key")
    return Settings(**values)
