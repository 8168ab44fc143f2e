"""Typed configuration (app/config.py): defaults, every refusal naming its variable, secrets,
and README's configuration table kept equal to the code's table of settings."""

from __future__ import annotations

import dataclasses
import re
import stat
import threading
from pathlib import Path

import pytest

from app.config import SETTINGS, ConfigError, Settings, load_settings, markdown_table
from tests.conftest import ROOT


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_are_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    instance = tmp_path / "instance"
    assert settings.instance_dir == instance
    assert instance.is_dir()
    assert mode_of(instance) & 0o077 == 0
    assert settings.database_url == f"sqlite:///{instance / 'consent-replay.db'}"
    assert settings.broker_url == "filesystem://"
    assert settings.store_kind == "local"
    assert settings.store_dir == instance / "objects"
    assert settings.keyring_path == instance / "keyring.json"
    assert settings.scratch_dir == instance / "scratch"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.max_upload_bytes == 4 * 1024**3
    assert settings.job_time_limit_s == 3600
    assert settings.visibility_timeout_s == 2 * 3600
    assert settings.secure_cookies is False
    assert settings.log_level == "INFO"
    assert settings.s3_bucket == "consent-replay"
    assert settings.queue_prefix == ""
    assert (settings.ffmpeg, settings.ffprobe) == ("ffmpeg", "ffprobe")
    assert settings.embedded is True


@pytest.mark.parametrize(
    "extra",
    [
        {"CR_DATABASE_URL": "postgresql://u@127.0.0.1/db"},
        {"CR_BROKER_URL": "redis://127.0.0.1:6379/0"},
        {
            "CR_STORE": "s3",
            "CR_S3_ENDPOINT": "127.0.0.1:9000",
            "CR_S3_ACCESS_KEY": "a",
            "CR_S3_SECRET_KEY": "b",
        },
    ],
    ids=["postgresql", "redis", "s3"],
)
def test_any_server_part_means_not_embedded(tmp_path, extra):
    settings = load_settings({"CR_INSTANCE_DIR": str(tmp_path), **extra})
    assert settings.embedded is False


def test_values_are_parsed_into_their_types(tmp_path):
    settings = load_settings(
        {
            "CR_INSTANCE_DIR": str(tmp_path),
            "CR_MAX_UPLOAD_BYTES": "500M",
            "CR_MAX_DURATION_S": "1_800",
            "CR_S3_SECURE": "yes",
            "CR_JOB_TIME_LIMIT_S": "100",
            "CR_PUBLIC_URL": "https://coaching.example.org/",
            "CR_LOG_LEVEL": "debug",
            "CR_STORE": "minio",
            "CR_S3_ENDPOINT": "127.0.0.1:9000",
            "CR_S3_ACCESS_KEY": "a",
            "CR_S3_SECRET_KEY": "b",
        }
    )
    assert settings.max_upload_bytes == 500 * 1024**2
    assert settings.max_duration_s == 1800
    assert settings.s3_secure is True
    assert settings.visibility_timeout_s == 200  # twice the job limit by default
    assert settings.public_url == "https://coaching.example.org"
    assert settings.secure_cookies is True  # on for an https public URL
    assert settings.log_level == "DEBUG"
    assert settings.store_kind == "s3"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db.internal/consent", "postgresql+psycopg://u:p@db.internal/consent"),
        ("postgres://u@127.0.0.1:5432/x", "postgresql+psycopg://u@127.0.0.1:5432/x"),
        ("postgresql+psycopg://u@h/x", "postgresql+psycopg://u@h/x"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_postgresql_urls_use_the_psycopg3_driver(tmp_path, given, expected):
    settings = load_settings({"CR_INSTANCE_DIR": str(tmp_path), "CR_DATABASE_URL": given})
    assert settings.database_url == expected


S3 = {"CR_STORE": "s3", "CR_S3_ENDPOINT": "127.0.0.1:9000"}
S3_FULL = {**S3, "CR_S3_ACCESS_KEY": "a", "CR_S3_SECRET_KEY": "b"}
HSM = {"CR_KEK_PROVIDER": "pkcs11", "CR_PKCS11_MODULE": "/bin/sh", "CR_PKCS11_TOKEN": "t"}

BAD_VALUES = [
    ("CR_MAX_DURATION_S", {"CR_MAX_DURATION_S": "ten"}),
    ("CR_MAX_DURATION_S", {"CR_MAX_DURATION_S": "0"}),
    ("CR_MAX_WIDTH", {"CR_MAX_WIDTH": "99999"}),
    ("CR_FFMPEG_TIMEOUT_S", {"CR_FFMPEG_TIMEOUT_S": "1.5"}),
    ("CR_TRUSTED_PROXIES", {"CR_TRUSTED_PROXIES": "-1"}),
    ("CR_MAX_UPLOAD_BYTES", {"CR_MAX_UPLOAD_BYTES": "lots"}),
    ("CR_MAX_UPLOAD_BYTES", {"CR_MAX_UPLOAD_BYTES": "4XB"}),
    ("CR_MAX_UPLOAD_BYTES", {"CR_MAX_UPLOAD_BYTES": "0"}),
    ("CR_MAX_UPLOAD_BYTES", {"CR_MAX_UPLOAD_BYTES": "-1G"}),
    ("CR_MAX_UPLOAD_BYTES", {"CR_MAX_UPLOAD_BYTES": "1e999"}),
    ("CR_S3_SECURE", {**S3_FULL, "CR_S3_SECURE": "maybe"}),
    ("CR_SECURE_COOKIES", {"CR_SECURE_COOKIES": "perhaps"}),
    ("CR_DATABASE_URL", {"CR_DATABASE_URL": "mysql://u@127.0.0.1/db"}),
    ("CR_DATABASE_URL", {"CR_DATABASE_URL": "not a url"}),
    ("CR_BROKER_URL", {"CR_BROKER_URL": "http://127.0.0.1:6379/0"}),
    ("CR_QUEUE_PREFIX", {"CR_QUEUE_PREFIX": "two words"}),
    ("CR_QUEUE_PREFIX", {"CR_QUEUE_PREFIX": "x" * 41}),
    ("CR_STORE", {"CR_STORE": "ftp"}),
    ("CR_S3_ENDPOINT", {"CR_STORE": "s3", "CR_S3_ACCESS_KEY": "a", "CR_S3_SECRET_KEY": "b"}),
    ("CR_S3_ACCESS_KEY", {**S3, "CR_S3_SECRET_KEY": "b"}),
    ("CR_S3_SECRET_KEY", {**S3, "CR_S3_ACCESS_KEY": "a"}),
    ("CR_S3_ENDPOINT", {**S3_FULL, "CR_S3_ENDPOINT": "http://127.0.0.1:9000"}),
    ("CR_S3_ENDPOINT", {**S3_FULL, "CR_S3_ENDPOINT": "127.0.0.1:9000/bucket"}),
    ("CR_S3_BUCKET", {"CR_S3_BUCKET": "Uppercase-Bucket"}),
    ("CR_S3_BUCKET", {"CR_S3_BUCKET": "-leading-dash"}),
    ("CR_S3_BUCKET", {"CR_S3_BUCKET": "two..dots"}),
    ("CR_S3_BUCKET", {"CR_S3_BUCKET": "ab"}),
    ("CR_SECRET_KEY", {"CR_SECRET_KEY": "too-short-a-secret"}),
    ("CR_VISIBILITY_TIMEOUT_S", {"CR_JOB_TIME_LIMIT_S": "100", "CR_VISIBILITY_TIMEOUT_S": "100"}),
    ("CR_VISIBILITY_TIMEOUT_S", {"CR_JOB_TIME_LIMIT_S": "600", "CR_VISIBILITY_TIMEOUT_S": "300"}),
    ("CR_JOB_TIME_LIMIT_S", {"CR_JOB_TIME_LIMIT_S": "soon"}),
    ("CR_PUBLIC_URL", {"CR_PUBLIC_URL": "ftp://coaching.example.org"}),
    ("CR_PUBLIC_URL", {"CR_PUBLIC_URL": "coaching.example.org"}),
    ("CR_PUBLIC_URL", {"CR_PUBLIC_URL": "https://"}),
    ("CR_LOG_LEVEL", {"CR_LOG_LEVEL": "LOUD"}),
    ("CR_MAX_TOTAL_PIXELS", {"CR_MAX_TOTAL_PIXELS": "lots"}),
    ("CR_MAX_TOTAL_PIXELS", {"CR_MAX_TOTAL_PIXELS": "0"}),
    ("CR_MAX_TOTAL_PIXELS", {"CR_MAX_TOTAL_PIXELS": "1e999"}),
    ("CR_METRICS_TOKEN", {"CR_METRICS_TOKEN": "short"}),
    ("CR_METRICS_TOKEN", {"CR_METRICS_TOKEN": "a token with spaces in it, long enough"}),
    ("CR_RATELIMIT_STORAGE_URL", {"CR_RATELIMIT_STORAGE_URL": "bogus"}),
    ("CR_RATELIMIT_STORAGE_URL", {"CR_RATELIMIT_STORAGE_URL": "http://127.0.0.1:6379"}),
    ("CR_KEK_PROVIDER", {"CR_KEK_PROVIDER": "vault"}),
    ("CR_PKCS11_MODULE", {"CR_KEK_PROVIDER": "pkcs11"}),
    ("CR_PKCS11_TOKEN", {"CR_KEK_PROVIDER": "pkcs11", "CR_PKCS11_MODULE": "/bin/sh"}),
    (
        "CR_PKCS11_MODULE",
        {
            **HSM,
            "CR_PKCS11_MODULE": "/nonexistent/libhsm.so",
            "CR_PKCS11_PIN_FILE": "/etc/hostname",
        },
    ),
    ("CR_PKCS11_PIN_FILE", {**HSM, "CR_PKCS11_PIN_FILE": "/nonexistent/pin"}),
    ("CR_PKCS11_PIN_FILE", {**HSM, "CR_PKCS11_PIN_FILE": "/dev/null"}),
    ("CR_SESSION_IDLE_MINUTES", {"CR_SESSION_IDLE_MINUTES": "1"}),
    ("CR_SESSION_IDLE_MINUTES", {"CR_SESSION_IDLE_MINUTES": "an hour"}),
    ("CR_SESSION_MAX_HOURS", {"CR_SESSION_MAX_HOURS": "0"}),
    ("CR_SESSION_MAX_HOURS", {"CR_SESSION_MAX_HOURS": "100000"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "http://mail.example.org"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "smtp://"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "smtp://mail.example.org:twentyfive"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "smtp://mail.example.org?starttls=perhaps"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "smtp://mail.example.org?tls=yes"}),
    ("CR_SMTP_URL", {"CR_SMTP_URL": "smtps://mail.example.org?cafile=/nonexistent/ca.pem"}),
    ("CR_MAIL_FROM", {"CR_MAIL_FROM": "not an address"}),
    ("CR_MAIL_FROM", {"CR_MAIL_FROM": "a@b.example\r\nBcc: x@evil.example"}),
    ("CR_MAIL_RETRIES", {"CR_MAIL_RETRIES": "-1"}),
    ("CR_MAIL_RETRY_S", {"CR_MAIL_RETRY_S": "0"}),
]


def test_mail_and_session_settings(tmp_path):
    settings = load_settings(
        {
            "CR_INSTANCE_DIR": str(tmp_path),
            "CR_SMTP_URL": "smtp://relay:p%40ss@mail.example.org:587?starttls=true&timeout=9",
            "CR_MAIL_FROM": "Coaching <coaching@example.org>",
            "CR_SESSION_IDLE_MINUTES": "30",
            "CR_SESSION_MAX_HOURS": "8",
        }
    )
    assert settings.smtp_url.startswith("smtp://relay:")
    assert "p%40ss" not in repr(settings)  # the mail password is never shown
    assert settings.mail_from == "Coaching <coaching@example.org>"
    assert (settings.session_idle_minutes, settings.session_max_hours) == (30, 8)
    defaults = load_settings({"CR_INSTANCE_DIR": str(tmp_path / "d")})
    assert defaults.smtp_url is None  # the embedded default writes .eml files
    assert defaults.mail_from == "consent-replay <no-reply@127.0.0.1>"
    assert (defaults.session_idle_minutes, defaults.session_max_hours) == (60, 12)
    assert defaults.session_cookie_name == "cr_session"
    https = load_settings(
        {"CR_INSTANCE_DIR": str(tmp_path / "h"), "CR_PUBLIC_URL": "https://coaching.example.org"}
    )
    assert https.session_cookie_name == "__Host-cr_session"
    assert https.mail_from == "consent-replay <no-reply@coaching.example.org>"


@pytest.mark.parametrize(
    ("variable", "extra"),
    BAD_VALUES,
    ids=[f"{name}-{i}" for i, (name, _) in enumerate(BAD_VALUES)],
)
def test_a_bad_value_raises_config_error_naming_the_variable(tmp_path, variable, extra):
    with pytest.raises(ConfigError) as caught:
        load_settings({"CR_INSTANCE_DIR": str(tmp_path), **extra})
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    "url", ["memory://", "redis://127.0.0.1:6379/3", "rediss://cache.internal:6380/0"]
)
def test_rate_limit_storage_urls_are_accepted(tmp_path, url):
    settings = load_settings({"CR_INSTANCE_DIR": str(tmp_path), "CR_RATELIMIT_STORAGE_URL": url})
    assert settings.ratelimit_storage_url == url
    assert settings.as_flask_config()["RATELIMIT_STORAGE_URI"] == url


def test_valid_s3_settings_are_accepted(tmp_path):
    settings = load_settings(
        {"CR_INSTANCE_DIR": str(tmp_path), **S3_FULL, "CR_S3_BUCKET": "cr-media.prod-1"}
    )
    assert (settings.s3_endpoint, settings.s3_bucket) == ("127.0.0.1:9000", "cr-media.prod-1")


def test_generated_secret_is_private_and_stable(tmp_path):
    first = load_settings({"CR_INSTANCE_DIR": str(tmp_path)})
    secret_file = tmp_path / "secret_key"
    assert secret_file.is_file()
    assert mode_of(secret_file) == 0o600
    assert len(first.secret_key) >= 32
    assert secret_file.read_text().strip() == first.secret_key
    second = load_settings({"CR_INSTANCE_DIR": str(tmp_path)})
    assert second.secret_key == first.secret_key
    # A different instance gets a different secret: nothing is hard-coded.
    other = load_settings({"CR_INSTANCE_DIR": str(tmp_path / "other")})
    assert other.secret_key != first.secret_key
    # No temporary files are left next to it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["secret_key"]


def test_a_given_secret_is_used_and_nothing_is_generated(tmp_path):
    secret = "s" * 40
    settings = load_settings({"CR_INSTANCE_DIR": str(tmp_path), "CR_SECRET_KEY": secret})
    assert settings.secret_key == secret
    assert not (tmp_path / "secret_key").exists()


def test_an_empty_secret_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings({"CR_INSTANCE_DIR": str(tmp_path)})


def test_concurrent_first_starts_agree_on_one_secret(tmp_path):
    # Web and worker processes started together on a fresh instance must not race: none may
    # read a half-written secret file, and all must end up with the same secret.
    for attempt in range(10):
        instance = tmp_path / f"instance-{attempt}"
        barrier = threading.Barrier(8)
        results: list[object] = []

        def start(instance=instance, barrier=barrier, results=results):
            barrier.wait()
            try:
                results.append(load_settings({"CR_INSTANCE_DIR": str(instance)}).secret_key)
            except ConfigError as exc:
                results.append(exc)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        errors = [r for r in results if isinstance(r, Exception)]
        assert errors == []
        assert len(set(results)) == 1
        assert (instance / "secret_key").read_text().strip() == results[0]


def test_the_hsm_pin_is_read_from_its_file_and_never_shown(tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text("s3cr3t-pin-0042\n")
    settings = load_settings(
        {"CR_INSTANCE_DIR": str(tmp_path), **HSM, "CR_PKCS11_PIN_FILE": str(pin_file)}
    )
    assert settings.kek_provider == "pkcs11"
    assert settings.pkcs11_pin == "s3cr3t-pin-0042"
    assert settings.pkcs11_token == "t"
    assert "s3cr3t-pin-0042" not in repr(settings)
    assert load_settings({"CR_INSTANCE_DIR": str(tmp_path)}).kek_provider == "file"


def test_the_ffmpeg_programs_can_be_named(tmp_path):
    settings = load_settings(
        {
            "CR_INSTANCE_DIR": str(tmp_path),
            "CR_FFMPEG": "/opt/ffmpeg-7/bin/ffmpeg",
            "CR_FFPROBE": "ffprobe-7",
        }
    )
    assert (settings.ffmpeg, settings.ffprobe) == ("/opt/ffmpeg-7/bin/ffmpeg", "ffprobe-7")


def test_every_settings_attribute_comes_from_one_row_of_the_table():
    attributes = {f.name for f in dataclasses.fields(Settings)}
    rows = [setting.attr for setting in SETTINGS]
    assert len(rows) == len(set(rows))
    assert len({setting.name for setting in SETTINGS}) == len(SETTINGS)
    # The one row that is not an attribute itself: the PIN file, read into the PIN.
    assert set(rows) - attributes == {"pkcs11_pin_file"}
    assert attributes - set(rows) == {"pkcs11_pin"}


# --- README's configuration table ------------------------------------------------------------


def readme_configuration() -> tuple[str, dict[str, tuple[str, str]]]:
    """The table under README's "## Configuration": its text, and variable -> (default, what)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[2:]:  # after the header and the --- line
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 3, f"not a row of variable | default | what: {line}"
        variable, default, what = cells
        found = re.fullmatch(r"`(CR_[A-Z0-9_]+)`", variable)
        assert found, f"one `CR_...` variable per row, not {variable}"
        name = found.group(1)
        assert name not in rows, f"README lists {name} twice"
        rows[name] = (default, what)
    return "\n".join(lines) + "\n", rows


def test_readme_lists_every_setting_of_the_code():
    _, rows = readme_configuration()
    missing = [setting.name for setting in SETTINGS if setting.name not in rows]
    assert missing == [], (
        "add these to README's configuration table: consent-replay config --markdown"
    )


def test_readme_lists_no_setting_the_code_does_not_know():
    _, rows = readme_configuration()
    known = {setting.name for setting in SETTINGS}
    assert [name for name in rows if name not in known] == []


def test_readme_shows_each_default_the_code_has():
    _, rows = readme_configuration()
    differ = {
        s.name: (rows[s.name][0], s.shown_default)
        for s in SETTINGS
        if s.name in rows and rows[s.name][0] != s.shown_default
    }
    assert differ == {}, "README's default, then the code's"


def test_readme_table_is_the_one_the_code_prints():
    # Descriptions and order too: `consent-replay config --markdown` prints the table to paste.
    table, _ = readme_configuration()
    assert table == markdown_table()
