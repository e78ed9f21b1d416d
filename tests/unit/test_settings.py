"""Settings: precedence, casting, and start-up failures that name the bad setting."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from broker.event_loop import EventLoopUnavailable, loop_factory
from broker.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings.load({})
    assert (s.host, s.port, s.db) == ("127.0.0.1", 8080, "./var/rsb.db")
    assert s.code_digits == 10 and s.code_ttl == timedelta(minutes=10)
    assert s.base_url == "http://127.0.0.1:8080"
    # On loopback, the page may be opened as localhost or by number: both are the broker's own.
    assert s.origins == {"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"}


def test_a_public_url_or_a_non_loopback_host_is_the_only_own_origin() -> None:
    public = Settings.load({"RSB_PUBLIC_URL": "https://support.example"})
    assert public.origins == {"https://support.example"}
    lan = Settings.load({"RSB_HOST": "10.0.0.5", "RSB_ALLOWED_ORIGINS": "https://a.example"})
    assert lan.origins == {"http://10.0.0.5:8080", "https://a.example"}


def test_precedence_toml_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "rsb.toml"
    config.write_text(
        'port = 9000\ndb = "from-toml.db"\ncode_ttl = 300\n'
        '[permissions]\ntake_control = ["engineering"]\n'
    )
    s = Settings.load({"RSB_DB": "from-env.db"}, config_file=config, overrides={"port": 9100})
    assert (s.port, s.db, s.code_ttl) == (9100, "from-env.db", timedelta(seconds=300))
    assert s.permissions == {"take_control": ("engineering",)}
    s2 = Settings.load({"RSB_CONFIG": str(config)})
    assert s2.port == 9000


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"RSB_PORT": "http"}, "port"),
        ({"RSB_PORT": "70000"}, "port"),
        ({"RSB_CODE_DIGITS": "4"}, "code_digits"),
        ({"RSB_CODE_TTL": "-1"}, "code_ttl"),
        ({"RSB_TRUSTED_PROXIES": "not-a-network"}, "trusted_proxies"),
        ({"RSB_DEMO_USERS": "maybe"}, "demo_users"),
        ({"RSB_EVENT_LOOP": "trio"}, "event_loop"),
        ({"RSB_RELAY_HEARTBEAT": "0.5"}, "relay_heartbeat"),
        ({"RSB_RELAY_HEARTBEAT": "7200"}, "relay_heartbeat"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.load(env)


def test_unknown_keys_and_half_tls_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "rsb.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        Settings.load({}, config_file=config)
    with pytest.raises(SettingsError, match="tls"):
        Settings.load({"RSB_TLS_CERT": "cert.pem"})
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.load({}, config_file=tmp_path / "missing.toml")


def test_every_setting_is_documented() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for field in dataclasses.fields(Settings):
        assert f"`{field.name}`" in doc, f"{field.name} missing from docs/configuration.md"
        if field.name not in ("permissions", "plans"):  # TOML tables only
            assert f"`RSB_{field.name.upper()}`" in doc


def test_token_lifetimes_are_capped() -> None:
    with pytest.raises(SettingsError, match="staff_token_ttl"):
        Settings.load({"RSB_STAFF_TOKEN_TTL": "86400"})


def test_plans_table_in_the_main_config(tmp_path: Path) -> None:
    from broker.services import load_plans

    config = tmp_path / "rsb.toml"
    config.write_text(
        '[plans.gold]\ncoverage = "24x7"\nresponse_hours = {1 = 0.5, 2 = 1, 3 = 2, 4 = 4}\n'
    )
    plans = load_plans(Settings.load({}, config_file=config))
    assert set(plans) == {"gold"} and plans["gold"].targets[1] == timedelta(minutes=30)
    config.write_text('[plans.gold]\ncoverage = "sometimes"\n')
    with pytest.raises(SettingsError, match="plans"):
        load_plans(Settings.load({}, config_file=config))


def test_event_loop_choice() -> None:
    assert Settings.load({}).event_loop == "auto"
    assert Settings.load({"RSB_EVENT_LOOP": " AsyncIO "}).event_loop == "asyncio"
    assert loop_factory("asyncio") == ("asyncio", None)
    # The server extra installs uvloop on Linux, where the tests run: auto picks it.
    import uvloop

    assert loop_factory("auto") == ("uvloop", uvloop.new_event_loop)
    assert loop_factory("uvloop") == ("uvloop", uvloop.new_event_loop)


def test_event_loop_uvloop_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes ``import uvloop`` fail
    assert loop_factory("auto") == ("asyncio", None)
    with pytest.raises(EventLoopUnavailable, match="not installed"):
        loop_factory("uvloop")
