"""Typed configuration from the environment.

Every setting is read from a ``CR_*`` environment variable and parsed into its type once, at
start-up. A bad value raises :class:`ConfigError` naming the variable, so a misconfigured
deployment stops before serving anything. There is no default secret: the embedded default
generates its secrets into the instance folder (mode 0600) on first start.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _parse_int(name: str, raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum of {maximum}")
    return value


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


# S3 bucket naming rules: 3-63 lowercase letters, digits, dots and dashes, starting and ending
# with a letter or digit, not like an IP address (MinIO and AWS refuse anything else).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


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
            "SESSION_COOKIE_NAME": "cr_session",
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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment into :class:`Settings`, raising ConfigError naming a bad variable."""
    env = os.environ if environ is None else environ

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name)
        return default if value is None or value == "" else value

    def typed(name: str, default: str, parse: Callable[[str, str], Any]) -> Any:
        return parse(name, get(name, default) or default)

    instance_dir = Path(get("CR_INSTANCE_DIR", "instance") or "instance").expanduser().resolve()
    instance_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    database_url = _check_database_url(
        "CR_DATABASE_URL",
        get("CR_DATABASE_URL") or f"sqlite:///{instance_dir / 'consent-replay.db'}",
    )
    broker_url = _check_broker_url("CR_BROKER_URL", get("CR_BROKER_URL") or "filesystem://")

    queue_prefix = get("CR_QUEUE_PREFIX", "") or ""
    if len(queue_prefix) > 40 or not all(c.isalnum() or c in "-_." for c in queue_prefix):
        raise ConfigError(
            f"CR_QUEUE_PREFIX={queue_prefix!r} may hold up to 40 letters, digits, '-', '_' or '.'"
        )

    store_kind = (get("CR_STORE", "local") or "local").lower()
    if store_kind not in {"local", "s3", "minio"}:
        raise ConfigError(f"CR_STORE={store_kind!r} must be 'local' or 's3'")
    store_kind = "s3" if store_kind == "minio" else store_kind
    s3_endpoint = get("CR_S3_ENDPOINT")
    s3_access_key = get("CR_S3_ACCESS_KEY")
    s3_secret_key = get("CR_S3_SECRET_KEY")
    if store_kind == "s3":
        for name, value in (
            ("CR_S3_ENDPOINT", s3_endpoint),
            ("CR_S3_ACCESS_KEY", s3_access_key),
            ("CR_S3_SECRET_KEY", s3_secret_key),
        ):
            if not value:
                raise ConfigError(f"{name} is required when CR_STORE=s3")
        assert s3_endpoint is not None
        if "://" in s3_endpoint or "/" in s3_endpoint:
            raise ConfigError(
                f"CR_S3_ENDPOINT={s3_endpoint!r} must be host:port (set CR_S3_SECURE for TLS)"
            )
    bucket = get("CR_S3_BUCKET", "consent-replay") or "consent-replay"
    if not _BUCKET.match(bucket) or ".." in bucket or _IPV4.match(bucket):
        raise ConfigError(f"CR_S3_BUCKET={bucket!r} is not a valid bucket name")

    kek_provider = (get("CR_KEK_PROVIDER", "file") or "file").lower()
    if kek_provider not in {"file", "pkcs11"}:
        raise ConfigError(f"CR_KEK_PROVIDER={kek_provider!r} must be 'file' or 'pkcs11'")
    pkcs11_module = pkcs11_token = pkcs11_pin = None
    if kek_provider == "pkcs11":
        for name in ("CR_PKCS11_MODULE", "CR_PKCS11_TOKEN", "CR_PKCS11_PIN_FILE"):
            if not get(name):
                raise ConfigError(f"{name} is required when CR_KEK_PROVIDER=pkcs11")
        pkcs11_module = Path(get("CR_PKCS11_MODULE") or "").expanduser()
        if not pkcs11_module.is_file():
            raise ConfigError(f"CR_PKCS11_MODULE={str(pkcs11_module)!r} is not a file")
        pkcs11_token = get("CR_PKCS11_TOKEN")
        pin_file = Path(get("CR_PKCS11_PIN_FILE") or "").expanduser()
        try:
            pkcs11_pin = pin_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"CR_PKCS11_PIN_FILE={str(pin_file)!r} cannot be read") from None
        if not pkcs11_pin:
            raise ConfigError(f"CR_PKCS11_PIN_FILE={str(pin_file)!r} is empty")

    secret_key = get("CR_SECRET_KEY")
    if secret_key is not None and len(secret_key) < 32:
        raise ConfigError("CR_SECRET_KEY must be at least 32 characters")
    if secret_key is None:
        secret_key = _secret_from_instance(instance_dir, "secret_key")

    public_url = (get("CR_PUBLIC_URL", "http://127.0.0.1:8000") or "").rstrip("/")
    if urlsplit(public_url).scheme not in {"http", "https"} or not urlsplit(public_url).netloc:
        raise ConfigError(f"CR_PUBLIC_URL={public_url!r} must be an http(s) URL")

    metrics_token = get("CR_METRICS_TOKEN")
    if metrics_token is not None and (
        len(metrics_token) < 24 or any(c.isspace() for c in metrics_token)
    ):
        raise ConfigError("CR_METRICS_TOKEN must be at least 24 characters, without spaces")

    log_level = (get("CR_LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"CR_LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")

    job_time_limit_s = typed(
        "CR_JOB_TIME_LIMIT_S", "3600", lambda n, r: _parse_int(n, r, minimum=10)
    )
    visibility_timeout_s = typed(
        "CR_VISIBILITY_TIMEOUT_S",
        str(job_time_limit_s * 2),
        lambda n, r: _parse_int(n, r, minimum=10),
    )
    if visibility_timeout_s <= job_time_limit_s:
        # A shorter visibility timeout makes the broker hand a running job to a second worker.
        raise ConfigError(
            "CR_VISIBILITY_TIMEOUT_S must be longer than CR_JOB_TIME_LIMIT_S "
            f"({visibility_timeout_s} <= {job_time_limit_s})"
        )

    return Settings(
        instance_dir=instance_dir,
        database_url=database_url,
        broker_url=broker_url,
        queue_prefix=queue_prefix,
        store_kind=store_kind,
        store_dir=Path(get("CR_STORE_DIR") or instance_dir / "objects").expanduser().resolve(),
        s3_endpoint=s3_endpoint,
        s3_access_key=s3_access_key,
        s3_secret_key=s3_secret_key,
        s3_bucket=bucket,
        s3_secure=typed("CR_S3_SECURE", "false", _parse_bool),
        s3_region=get("CR_S3_REGION"),
        keyring_path=Path(get("CR_KEYRING") or instance_dir / "keyring.json")
        .expanduser()
        .resolve(),
        kek_provider=kek_provider,
        pkcs11_module=pkcs11_module,
        pkcs11_token=pkcs11_token,
        pkcs11_pin=pkcs11_pin,
        secret_key=secret_key,
        scratch_dir=Path(get("CR_SCRATCH_DIR") or instance_dir / "scratch").expanduser().resolve(),
        public_url=public_url,
        max_upload_bytes=typed("CR_MAX_UPLOAD_BYTES", "4GiB", _parse_size),
        max_duration_s=typed(
            "CR_MAX_DURATION_S", "14400", lambda n, r: _parse_int(n, r, minimum=1)
        ),
        max_width=typed("CR_MAX_WIDTH", "7680", lambda n, r: _parse_int(n, r, 16, 16384)),
        max_height=typed("CR_MAX_HEIGHT", "4320", lambda n, r: _parse_int(n, r, 16, 16384)),
        max_fps=typed("CR_MAX_FPS", "120", lambda n, r: _parse_int(n, r, 1, 1000)),
        # width × height × frames per second × seconds: what decoding a video costs.
        max_total_pixels=typed("CR_MAX_TOTAL_PIXELS", "200G", _parse_count),
        ffmpeg_timeout_s=typed(
            "CR_FFMPEG_TIMEOUT_S", "3000", lambda n, r: _parse_int(n, r, minimum=5)
        ),
        job_time_limit_s=job_time_limit_s,
        visibility_timeout_s=visibility_timeout_s,
        stall_check_s=typed("CR_STALL_CHECK_S", "60", lambda n, r: _parse_int(n, r, 5, 3600)),
        client_timeout_s=typed("CR_CLIENT_TIMEOUT_S", "60", lambda n, r: _parse_int(n, r, 5, 3600)),
        secure_cookies=typed(
            "CR_SECURE_COOKIES", "true" if public_url.startswith("https") else "false", _parse_bool
        ),
        log_level=log_level,
        ratelimit_storage_url=_check_ratelimit_url(
            "CR_RATELIMIT_STORAGE_URL", get("CR_RATELIMIT_STORAGE_URL", "memory://") or "memory://"
        ),
        trusted_proxies=typed("CR_TRUSTED_PROXIES", "0", lambda n, r: _parse_int(n, r, 0, 5)),
        metrics_token=metrics_token,
    )
