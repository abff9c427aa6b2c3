"""Configuration errors name the setting, its value (never a secret's) and where it came from; load_config_traced
says where each setting came from (replicator.config_origins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.cli import main
from replicator.config import load_config, load_config_traced
from replicator.errors import ConfigError

ENDPOINTS = {"SCIMREP_SOURCE_URL": "https://source.example/v2", "SCIMREP_DESTINATION_URL": "https://dest.example/v2"}


def error_of(**kwargs: object) -> str:
    kwargs.setdefault("environ", ENDPOINTS)
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_a_wrong_type_names_setting_value_and_variable() -> None:
    """msgspec's "Expected `int`, got `str`" reads as the setting, what it expects, the value and its variable."""
    message = error_of(environ={**ENDPOINTS, "SCIMREP_SYNC_MEMBER_CHUNK": "abc"})
    assert message.endswith('sync.member_chunk: expected an integer, got "abc" (from env SCIMREP_SYNC_MEMBER_CHUNK)')
    assert "Expected" not in message and "`" not in message
    message = error_of(overrides={"source.verify_tls": "maybe"})
    assert message.endswith('source.verify_tls: expected true or false, got "maybe" (from flag --source-verify-tls)')


def test_a_bad_choice_lists_the_choices() -> None:
    """An enum (Literal) setting's error lists its choices and names the flag the value came from."""
    message = error_of(overrides={"log_level": "loud"})
    assert message.endswith('log_level: expected one of debug, info, warning, error, got "loud" (from flag --log-level)')


def test_an_unknown_toml_key_suggests_the_right_one(tmp_path: Path) -> None:
    """An unknown key in the TOML file is named with its section, a did-you-mean and the file."""
    path = tmp_path / "r.toml"
    path.write_text('[sync]\nmembr_chunk = 5\n')
    assert error_of(config_file=str(path)).endswith(
        f"unknown setting sync.membr_chunk (did you mean sync.member_chunk?) in file {path}")


def test_every_unknown_toml_key_is_named_at_once(tmp_path: Path) -> None:
    """Several unknown keys in the TOML file are all named in one error (not one per attempt), each with
    its section, a did-you-mean and the file."""
    path = tmp_path / "r.toml"
    path.write_text('concurrncy = 4\n[source]\nulr = "http://127.0.0.1:1/v2"\n[sync]\nmembr_chunk = 5\n')
    assert error_of(config_file=str(path)).endswith(
        f"unknown settings concurrncy (did you mean concurrency?) in file {path}; source.ulr (did you mean "
        f"source.url?) in file {path}; sync.membr_chunk (did you mean sync.member_chunk?) in file {path}")


def test_a_bad_value_from_the_file_names_the_file_and_hides_a_secret(tmp_path: Path) -> None:
    """A validation error says the value and the file; a secret's value is *** and a URL carrying a password
    is not repeated."""
    path = tmp_path / "r.toml"
    path.write_text('concurrency = 0\n')
    message = error_of(config_file=str(path))
    assert message == f"concurrency must be between 1 and 1024 (got 0 from file {path})"
    path.write_text('[destination]\npassword = 1234567\n')
    message = error_of(config_file=str(path))
    assert message.endswith(f"destination.password: expected a string, got *** (from file {path})")
    assert "1234567" not in message
    message = error_of(environ={**ENDPOINTS, "SCIMREP_SOURCE_URL": "https://me:hunter2@source.example/v2"})
    assert message.startswith("source.url must not carry user:password@") and "hunter2" not in message


def test_origins_of_each_layer(tmp_path: Path) -> None:
    """Each setting's origin is the layer that set it last: file, env (or the secret's _FILE), flag, derived."""
    path = tmp_path / "r.toml"
    path.write_text('concurrency = 4\ninterval = 5.0\n[mapping.users]\nrename = { title = "department" }\n')
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    environ = {"SCIMREP_INTERVAL": "7", "SCIMREP_SOURCE_PINGONE_ENVIRONMENT": "env-1", "SCIMREP_SOURCE_KIND": "pingone",
               "SCIMREP_SOURCE_CLIENT_ID": "c", "SCIMREP_SOURCE_CLIENT_SECRET_FILE": str(secret),
               "SCIMREP_DESTINATION_URL": "https://dest.example/v2"}
    config, origins = load_config_traced(config_file=str(path), environ=environ, overrides={"grace": 3.0},
                                         override_origins={})
    assert config.concurrency == 4 and config.interval == 7.0 and config.source.client_secret == "s3cret"
    assert origins["concurrency"] == f"file {path}" and origins["mapping.users.rename"] == f"file {path}"
    assert origins["interval"] == "env SCIMREP_INTERVAL" and origins["grace"] == "flag --grace"
    assert origins["source.client_secret"] == "env SCIMREP_SOURCE_CLIENT_SECRET_FILE"
    assert origins["source.url"] == origins["source.token_url"] == "derived"
    assert "state" not in origins


def test_allow_member_removals_is_wired_from_file_env_and_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sync.allow_member_removals: a bad env value, a misspelt TOML key and the --allow-member-removals flag
    are each named by the setting (and its variable, file or flag)."""
    message = error_of(environ={**ENDPOINTS, "SCIMREP_SYNC_ALLOW_MEMBER_REMOVALS": "maybe"})
    assert message.endswith('sync.allow_member_removals: expected true or false, got "maybe" '
                            "(from env SCIMREP_SYNC_ALLOW_MEMBER_REMOVALS)")
    path = tmp_path / "r.toml"
    path.write_text("[sync]\nallow_member_removal = true\n")
    assert error_of(config_file=str(path)).endswith(
        f"unknown setting sync.allow_member_removal (did you mean sync.allow_member_removals?) in file {path}")
    endpoints = ["--source-url", ENDPOINTS["SCIMREP_SOURCE_URL"], "--destination-url", ENDPOINTS["SCIMREP_DESTINATION_URL"]]
    assert main(["config", "--allow-member-removals", *endpoints]) == 0
    shown = {line.split(" = ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert shown["sync.allow_member_removals"].split() == ["sync.allow_member_removals", "=", "true", "#", "flag",
                                                           "--allow-member-removals"]
    assert shown["sync.allow_mass_delete"].split()[:3] == ["sync.allow_mass_delete", "=", "false"]


def test_a_bad_url_names_where_it_came_from_but_not_its_value() -> None:
    """A URL is not repeated (its query may carry a credential), but the message says where it was set."""
    message = error_of(environ={**ENDPOINTS, "SCIMREP_SOURCE_URL": "ftp://source.example/v2?key=hunter2"})
    assert message == "source.url must start with http:// or https:// (from env SCIMREP_SOURCE_URL)"
    message = error_of(overrides={"destination.url": "dest.example/v2?key=hunter2"})
    assert message == "destination.url must start with http:// or https:// (from flag --destination-url)"
