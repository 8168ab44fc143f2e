"""SPEC §15's settings: incomplete or malformed, the process stops naming the variable."""

from __future__ import annotations

import re

import pytest

from app.config import ConfigError, load_settings

COMPLETE = {
    "CR_OIDC_ISSUER": "https://login.microsoftonline.com/tenant/v2.0",
    "CR_OIDC_CLIENT_ID": "client",
    "CR_OIDC_CLIENT_SECRET": "a-secret-1f8e3",
    "CR_OIDC_ROLE_MAP": "employee=cc-agents,coach=cc-coaches,admin=cr-admins,representative=union",
}


def load(tmp_path, **env):
    return load_settings({"CR_INSTANCE_DIR": str(tmp_path), **env})


def test_complete_settings_and_the_defaults(tmp_path):
    settings = load(tmp_path, **COMPLETE)
    assert settings.oidc_issuer == COMPLETE["CR_OIDC_ISSUER"]
    assert settings.oidc_role_map == {
        "cc-agents": "employee",
        "cc-coaches": "coach",
        "cr-admins": "admin",
        "union": "representative",
    }
    assert settings.oidc_roles_claim == "groups"
    assert settings.password_login is True
    assert settings.oidc_name == "your organisation"
    assert "a-secret-1f8e3" not in repr(settings)


def test_without_a_provider_nothing_changes(tmp_path):
    settings = load(tmp_path)
    assert settings.oidc_issuer is None and settings.password_login is True


@pytest.mark.parametrize(
    "missing", ["CR_OIDC_CLIENT_ID", "CR_OIDC_CLIENT_SECRET", "CR_OIDC_ROLE_MAP"]
)
def test_an_incomplete_provider_stops_start_up_naming_the_variable(tmp_path, missing):
    env = {k: v for k, v in COMPLETE.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing} is required when CR_OIDC_ISSUER is set"):
        load(tmp_path, **env)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CR_OIDC_CLIENT_ID": "client"}, "CR_OIDC_CLIENT_ID is set but CR_OIDC_ISSUER is not"),
        ({"CR_PASSWORD_LOGIN": "false"}, "CR_PASSWORD_LOGIN=false needs CR_OIDC_ISSUER"),
        ({**COMPLETE, "CR_OIDC_ISSUER": "login.example.org"}, "CR_OIDC_ISSUER="),
        ({**COMPLETE, "CR_OIDC_ROLE_MAP": "boss=cc-bosses"}, "CR_OIDC_ROLE_MAP: 'boss=cc-bosses'"),
        ({**COMPLETE, "CR_OIDC_ROLE_MAP": "employee"}, "CR_OIDC_ROLE_MAP: 'employee' must be"),
        (
            {**COMPLETE, "CR_OIDC_ROLE_MAP": "employee=cc,coach=cc"},
            "CR_OIDC_ROLE_MAP: the group 'cc' is given two roles",
        ),
        ({**COMPLETE, "CR_OIDC_ROLE_MAP": ",,"}, "CR_OIDC_ROLE_MAP maps no group"),
        ({**COMPLETE, "CR_OIDC_ROLES_CLAIM": "a claim"}, "CR_OIDC_ROLES_CLAIM="),
        ({**COMPLETE, "CR_PASSWORD_LOGIN": "maybe"}, "CR_PASSWORD_LOGIN="),
    ],
)
def test_malformed_settings_stop_start_up_naming_the_variable(tmp_path, env, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        load(tmp_path, **env)


def test_a_role_may_have_several_groups(tmp_path):
    settings = load(tmp_path, **{**COMPLETE, "CR_OIDC_ROLE_MAP": "employee=a, employee=b ,coach=c"})
    assert settings.oidc_role_map == {"a": "employee", "b": "employee", "c": "coach"}
