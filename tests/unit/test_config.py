"""Tests for configuration loading, precedence and validation (replicator.config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.config import Config, SideConfig, env_name, flag_name, iter_leaves, load_config
from replicator.errors import ConfigError

ENDPOINTS = {"SCIMREP_SOURCE_URL": "https://source.example/scim/v2", "SCIMREP_DESTINATION_URL": "https://dest.example/scim/v2"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "replicator.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


# -- precedence --------------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_set() -> None:
    """Only the endpoints given: every other setting has its built-in default."""
    config = load_config(environ=ENDPOINTS)
    assert config.concurrency == Config().concurrency == 16
    assert config.interval == 60.0
    assert config.sync.membership == "merge"
    assert config.source.page_size == 500
    assert config.source.url == "https://source.example/scim/v2"


def test_precedence_defaults_toml_environment_overrides(tmp_path: Path) -> None:
    """Each layer wins over the one below: defaults < TOML < environment < overrides."""
    path = write(
        tmp_path,
        """
concurrency = 4
interval = 10.0
log_level = "debug"

[source]
url = "https://toml-source.example"
page_size = 50

[destination]
url = "https://toml-dest.example"

[sync]
member_chunk = 7
delete = false
""",
    )
    environ = {
        "SCIMREP_CONCURRENCY": "8",
        "SCIMREP_INTERVAL": "20",
        "SCIMREP_SOURCE_URL": "https://env-source.example",
        "SCIMREP_SYNC_DELETE": "true",
    }
    overrides = {"concurrency": 32, "sync.member_chunk": None}
    config = load_config(config_file=path, environ=environ, overrides=overrides)
    assert config.concurrency == 32  # override beats environment and TOML
    assert config.interval == 20.0  # environment beats TOML
    assert config.log_level == "debug"  # TOML beats default
    assert config.source.url == "https://env-source.example"
    assert config.destination.url == "https://toml-dest.example"  # TOML kept where env is silent
    assert config.source.page_size == 50
    assert config.sync.member_chunk == 7  # a None override leaves the lower layer alone
    assert config.sync.delete is True  # environment beats TOML for nested booleans
    assert config.sync.update is True  # default
    assert config.log_format == "auto"  # default


def test_override_of_nested_path_beats_environment(tmp_path: Path) -> None:
    """A dotted override such as sync.remove_action wins over environment and TOML."""
    path = write(tmp_path, '[sync]\nremove_action = "delete"\n')
    environ = {**ENDPOINTS, "SCIMREP_SYNC_REMOVE_ACTION": "delete"}
    config = load_config(config_file=path, environ=environ, overrides={"sync.remove_action": "disable"})
    assert config.sync.remove_action == "disable"


def test_config_file_from_environment(tmp_path: Path) -> None:
    """SCIMREP_CONFIG names the TOML file when no config_file is given."""
    path = write(tmp_path, "concurrency = 3\n")
    config = load_config(environ={**ENDPOINTS, "SCIMREP_CONFIG": path})
    assert config.concurrency == 3


# -- validation messages name the field ---------------------------------------------------------


def test_unknown_nested_toml_key_names_the_dotted_field(tmp_path: Path) -> None:
    """An unknown key inside a table fails with a message naming it by its dotted path."""
    path = write(tmp_path, '[source]\nurl = "https://a.example"\nurll = "typo"\n')
    message = config_error(config_file=path, environ={"SCIMREP_DESTINATION_URL": "https://b.example"})
    assert "source.urll" in message


def test_unknown_top_level_toml_key_names_the_field(tmp_path: Path) -> None:
    """An unknown top-level key fails with a message naming it."""
    path = write(tmp_path, "concurency = 4\n")
    message = config_error(config_file=path, environ=ENDPOINTS)
    assert "concurency" in message


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    """concurrency = 'x' fails with a message naming concurrency."""
    path = write(tmp_path, "concurrency = 'x'\n")
    message = config_error(config_file=path, environ=ENDPOINTS)
    assert "concurrency" in message
    assert "$." not in message


def test_wrong_nested_type_names_the_dotted_field(tmp_path: Path) -> None:
    """A bad value inside a table is reported by its dotted path."""
    path = write(tmp_path, "[sync]\nmember_chunk = 'lots'\n")
    message = config_error(config_file=path, environ=ENDPOINTS)
    assert "sync.member_chunk" in message


def test_unknown_environment_variable_fails_with_its_name_and_the_likely_one() -> None:
    """A misspelled SCIMREP_ variable would otherwise be ignored silently (and a setting left at its
    default): it fails, naming the variable and the closest known one."""
    message = config_error(environ={**ENDPOINTS, "SCIMREP_CONCURENCY": "4"})
    assert "SCIMREP_CONCURENCY" in message and "SCIMREP_CONCURRENCY" in message


def test_known_environment_variables_other_than_settings_are_accepted(tmp_path: Path) -> None:
    """SCIMREP_CONFIG, SCIMREP_SECRETS_DIR and SCIMREP_<secret>_FILE are not settings and not typos."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    config = load_config(environ={**ENDPOINTS, "SCIMREP_SECRETS_DIR": str(tmp_path),
                                  "SCIMREP_SOURCE_TOKEN_FILE": str(token)})
    assert config.source.token == "s3cret"


def test_credentials_in_a_url_are_refused_without_repeating_them() -> None:
    """user:password@ in a URL fails fast naming the field, and the message does not echo the password."""
    message = config_error(environ={**ENDPOINTS, "SCIMREP_SOURCE_URL": "https://admin:pa55word@scim.example/v2"})
    assert "source.url" in message and "pa55word" not in message


def test_missing_source_url_names_source_url() -> None:
    """Without a source URL the error names source.url."""
    message = config_error(environ={"SCIMREP_DESTINATION_URL": "https://b.example"})
    assert "source.url" in message


def test_oauth_without_token_url_names_token_url() -> None:
    """OAuth credentials without token_url fail naming token_url."""
    environ = {
        **ENDPOINTS,
        "SCIMREP_SOURCE_CLIENT_ID": "client",
        "SCIMREP_SOURCE_CLIENT_SECRET": "very-secret-value",
    }
    message = config_error(environ=environ)
    assert "token_url" in message
    assert "source" in message
    assert "very-secret-value" not in message


def test_same_source_and_destination_is_refused() -> None:
    """Replicating a server onto itself is refused."""
    message = config_error(
        environ={"SCIMREP_SOURCE_URL": "https://a.example/", "SCIMREP_DESTINATION_URL": "https://a.example"}
    )
    assert "same" in message


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file that does not exist is a ConfigError, not an OSError."""
    message = config_error(config_file=str(tmp_path / "absent.toml"), environ=ENDPOINTS)
    assert "absent.toml" in message


# -- secrets --------------------------------------------------------------------------------------


def test_token_file_supplies_the_secret(tmp_path: Path) -> None:
    """SCIMREP_SOURCE_TOKEN_FILE reads the token from a file (surrounding whitespace stripped)."""
    secret = tmp_path / "token"
    secret.write_text("file-token-123\n", encoding="utf-8")
    config = load_config(environ={**ENDPOINTS, "SCIMREP_SOURCE_TOKEN_FILE": str(secret)})
    assert config.source.token == "file-token-123"
    assert config.source.auth_mode == "bearer"


def test_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    """A secret file that cannot be read fails with a ConfigError naming the variable."""
    message = config_error(environ={**ENDPOINTS, "SCIMREP_SOURCE_TOKEN_FILE": str(tmp_path / "missing")})
    assert "SCIMREP_SOURCE_TOKEN_FILE" in message


def test_repr_and_str_never_show_secrets() -> None:
    """Neither repr nor str of the configuration (or a side) contains a token, password or client secret."""
    environ = {
        **ENDPOINTS,
        "SCIMREP_SOURCE_TOKEN": "tok-AAAA-1111",
        "SCIMREP_DESTINATION_CLIENT_ID": "client-id",
        "SCIMREP_DESTINATION_CLIENT_SECRET": "sec-BBBB-2222",
        "SCIMREP_DESTINATION_TOKEN_URL": "https://idp.example/token",
    }
    config = load_config(environ=environ)
    assert config.source.token == "tok-AAAA-1111"
    assert config.destination.client_secret == "sec-BBBB-2222"
    for text in (repr(config), str(config), repr(config.source), str(config.destination)):
        assert "tok-AAAA-1111" not in text
        assert "sec-BBBB-2222" not in text
    assert "client-id" in repr(config)  # non-secret fields are still shown
    side = SideConfig(url="https://x", username="u", password="pw-CCCC-3333")
    assert "pw-CCCC-3333" not in repr(side)
    assert "pw-CCCC-3333" not in str(side)


# -- names of the layers ------------------------------------------------------------------------


def test_leaf_names_for_source_url() -> None:
    """source.url is a leaf; its environment name is SCIMREP_SOURCE_URL and its flag --source-url."""
    leaves = dict(iter_leaves())
    assert "source.url" in leaves
    assert "sync.member_chunk" in leaves
    assert "concurrency" in leaves
    assert "source" not in leaves  # tables are not leaves
    assert env_name("source.url") == "SCIMREP_SOURCE_URL"
    assert flag_name("source.url") == "--source-url"
    assert env_name("sync.member_chunk") == "SCIMREP_SYNC_MEMBER_CHUNK"
    assert flag_name("sync.member_chunk") == "--sync-member-chunk"


def test_every_leaf_has_distinct_names() -> None:
    """No two settings share an environment variable or a flag."""
    paths = [path for path, _ in iter_leaves()]
    assert len({env_name(p) for p in paths}) == len(paths)
    assert len({flag_name(p) for p in paths}) == len(paths)


def test_pingone_preset_derives_scim_and_token_urls() -> None:
    """Region + environment id give PingOne's SCIM base URL and token endpoint; explicit URLs win."""
    from replicator.config import load_config

    config = load_config(environ={
        "SCIMREP_SOURCE_PINGONE_REGION": "eu", "SCIMREP_SOURCE_PINGONE_ENVIRONMENT": "env-src",
        "SCIMREP_SOURCE_CLIENT_ID": "id", "SCIMREP_SOURCE_CLIENT_SECRET": "secret",
        "SCIMREP_DESTINATION_PINGONE_REGION": "com.au", "SCIMREP_DESTINATION_PINGONE_ENVIRONMENT": "env-dst",
        "SCIMREP_DESTINATION_URL": "https://proxy.example/v2", "SCIMREP_DESTINATION_TOKEN": "t",
    })
    assert config.source.url == "https://scim-api.pingone.eu/environments/env-src/v2"
    assert config.source.token_url == "https://auth.pingone.eu/env-src/as/token"
    assert config.source.auth_mode == "oauth"
    assert config.destination.url == "https://proxy.example/v2"
    assert config.destination.token_url == "https://auth.pingone.com.au/env-dst/as/token"


def test_pingone_preset_needs_both_parts() -> None:
    """A region without an environment id fails, naming both fields."""
    import pytest

    from replicator.config import load_config
    from replicator.errors import ConfigError

    with pytest.raises(ConfigError, match=r"source\.pingone_region and source\.pingone_environment"):
        load_config(environ={"SCIMREP_SOURCE_PINGONE_REGION": "eu", "SCIMREP_SOURCE_URL": "https://a/v2",
                             "SCIMREP_DESTINATION_URL": "https://b/v2"})


def test_container_secrets_are_read_from_the_secrets_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """/run/secrets/scimrep_destination_client_secret (folder configurable) supplies a secret; env wins."""
    from replicator.config import load_config

    (tmp_path / "scimrep_destination_client_secret").write_text("from-secret-file\n")
    (tmp_path / "scimrep_source_token").write_text("ignored\n")
    config = load_config(environ={
        "SCIMREP_SECRETS_DIR": str(tmp_path), "SCIMREP_SOURCE_URL": "https://a/v2", "SCIMREP_SOURCE_TOKEN": "env",
        "SCIMREP_DESTINATION_URL": "https://b/v2", "SCIMREP_DESTINATION_CLIENT_ID": "id",
        "SCIMREP_DESTINATION_TOKEN_URL": "https://b/token",
    })
    assert config.destination.client_secret == "from-secret-file"
    assert config.source.token == "env"


def test_a_pingone_side_derives_its_three_apis_from_region_and_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kind = "pingone" with a region and an environment id gives the Platform API, token and SCIM URLs
    as PingOne documents them (each overridable, without the environment id), OAuth client credentials,
    and the population map from a TOML table; without a region it is PingOne's `com`."""
    from replicator.config import load_config

    toml = tmp_path / "replicator.toml"
    toml.write_text('[source]\nkind = "pingone"\npingone_region = "sg"\npingone_environment = "env-src"\n'
                    'client_id = "a"\nclient_secret = "s"\n'
                    '[destination]\nkind = "pingone"\npingone_environment = "env-dst"\nclient_id = "b"\n'
                    'client_secret = "t"\napi_url = "http://127.0.0.1:9/v1/"\nauth_url = "http://127.0.0.1:9"\n'
                    'scim_url = "http://127.0.0.1:9/scim"\ndefault_population = "Imported"\n'
                    '[destination.populations]\nEmployees = "Staff"\n')
    config = load_config(config_file=str(toml), environ={})
    source, destination = config.source, config.destination
    assert (source.api_url, source.auth_url, source.scim_url) == (
        "https://api.pingone.sg/v1", "https://auth.pingone.sg", "https://scim-api.pingone.sg")
    assert source.token_url == "https://auth.pingone.sg/env-src/as/token"
    assert source.url == "https://scim-api.pingone.sg/environments/env-src/v2"
    assert source.auth_mode == "oauth"
    assert destination.api_url == "http://127.0.0.1:9/v1"
    assert destination.token_url == "http://127.0.0.1:9/env-dst/as/token"
    assert destination.url == "http://127.0.0.1:9/scim/environments/env-dst/v2"
    assert destination.populations == {"Employees": "Staff"} and destination.default_population == "Imported"
    assert load_config(environ={"SCIMREP_SOURCE_KIND": "pingone", "SCIMREP_SOURCE_PINGONE_ENVIRONMENT": "e",
                                "SCIMREP_SOURCE_CLIENT_ID": "a", "SCIMREP_SOURCE_CLIENT_SECRET": "s",
                                "SCIMREP_DESTINATION_URL": "https://b/v2"}).source.api_url == "https://api.pingone.com/v1"


def test_a_pingone_side_without_an_environment_or_with_a_bad_url_fails_naming_the_field() -> None:
    """kind = "pingone" needs the environment id; a base URL that is not http(s) is refused by name."""
    import pytest

    from replicator.config import load_config
    from replicator.errors import ConfigError

    base = {"SCIMREP_SOURCE_KIND": "pingone", "SCIMREP_SOURCE_CLIENT_ID": "a", "SCIMREP_SOURCE_CLIENT_SECRET": "s",
            "SCIMREP_DESTINATION_URL": "https://b/v2"}
    with pytest.raises(ConfigError, match=r"source\.kind = \"pingone\" needs source\.pingone_environment"):
        load_config(environ=base)
    with pytest.raises(ConfigError, match=r"^source\.api_url must start with http:// or https:// \(from env SCIMREP_SOURCE_API_URL\)$"):
        load_config(environ={**base, "SCIMREP_SOURCE_PINGONE_ENVIRONMENT": "e", "SCIMREP_SOURCE_API_URL": "api.example"})
