"""The command line's help and mistakes as a user meets them: one-line usage errors with a hint, and
`config` showing the effective settings and their origins without contacting anything."""

from __future__ import annotations

import json
from pathlib import Path

from replicator.testing import MemoryScimServer
from tests.integration.test_cli import cli

SECRET = "fake-sekrit-tok"


async def test_a_bad_flag_is_one_line_with_a_suggestion_and_exit_2() -> None:
    """A misspelt flag prints one line naming it, the flag meant and where help is, not the whole usage."""
    code, out, err = await cli("run", "--once", "--concurency", "5")
    assert code == 2 and out == ""
    assert err == ("scim-replicator: error: unknown flag --concurency (did you mean --concurrency?); "
                   "see scim-replicator run --help\n")
    code, _, err = await cli("run", "--source-url")
    assert code == 2 and err.count("\n") == 1 and "--source-url: expected one argument" in err
    code, _, err = await cli("run", "--concurrency", "abc")
    assert code == 2 and err.count("\n") == 1 and "--concurrency: expected an integer, got 'abc'" in err
    code, _, err = await cli()
    assert code == 2 and err == ("scim-replicator: error: the following arguments are required: command; "
                                 "see scim-replicator --help\n")


async def test_config_shows_effective_settings_with_origins_and_no_secret(tmp_path: Path) -> None:
    """`config` merges file < env < flags like `run`, says where each value came from, hides the secret,
    and contacts no server."""
    server = MemoryScimServer(bearer_token=SECRET)
    url = await server.start()
    try:
        toml = tmp_path / "r.toml"
        toml.write_text(f'concurrency = 4\ninterval = 5.0\n[source]\nurl = "{url}"\n')
        env = {"SCIMREP_SOURCE_TOKEN": SECRET, "SCIMREP_INTERVAL": "7"}
        flags = ["--config", str(toml), "--destination-url", "http://127.0.0.1:9/v2", "--insecure"]
        code, out, err = await cli("config", *flags, env=env)
        assert code == 0, err
        lines = {line.split(" = ", 1)[0]: line for line in out.splitlines()}
        assert lines["concurrency"].split() == ["concurrency", "=", "4", "#", "file", str(toml)]
        assert lines["interval"].split() == ["interval", "=", "7.0", "#", "env", "SCIMREP_INTERVAL"]
        assert lines["source.token"].split() == ["source.token", "=", '"***"', "#", "env", "SCIMREP_SOURCE_TOKEN"]
        assert lines["destination.verify_tls"].split()[2:] == ["false", "#", "flag", "--insecure"]
        assert lines["state"].split()[2:] == ['"scim-replicator.db"', "#", "default"]
        code, out, err = await cli("config", "--output", "json", *flags, env=env)
        assert code == 0, err
        settings = json.loads(out)["settings"]
        assert settings["destination.url"] == {"value": "http://127.0.0.1:9/v2", "origin": "flag --destination-url"}
        assert settings["source.token"] == {"value": "***", "origin": "env SCIMREP_SOURCE_TOKEN"}
        assert SECRET not in out
        assert not server.request_log
    finally:
        await server.stop()


async def test_config_with_a_bad_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    """`config` refuses a bad setting as `run` does: exit 2, one line naming setting, value and variable."""
    code, out, err = await cli("config", "--source-url", "http://127.0.0.1:9/a", "--destination-url",
                               "http://127.0.0.1:9/b", env={"SCIMREP_LOG_LEVEL": "loud"})
    assert code == 2 and out == ""
    assert err == ('scim-replicator: invalid configuration: log_level: expected one of debug, info, warning, '
                   'error, got "loud" (from env SCIMREP_LOG_LEVEL)\n')


async def test_config_of_an_incomplete_configuration_shows_it_and_names_what_is_missing(tmp_path: Path) -> None:
    """`config` with one side configured still prints the effective settings (the question it exists to
    answer), then says on stderr which required setting is missing, and exits 2."""
    toml = tmp_path / "one-side.toml"
    toml.write_text('[source]\nurl = "http://127.0.0.1:9/v2"\n')
    code, out, err = await cli("config", "--config", str(toml))
    assert code == 2
    lines = {line.split(" = ", 1)[0]: line for line in out.splitlines()}
    assert lines["source.url"].split()[2:] == ['"http://127.0.0.1:9/v2"', "#", "file", str(toml)]
    assert err.startswith("scim-replicator: destination.url is required") and err.count("\n") == 1, err
    code, out, err = await cli("config", "--config", str(toml), "--output", "json")
    assert code == 2 and json.loads(out)["settings"]["source.url"]["value"] == "http://127.0.0.1:9/v2"
    assert "destination.url is required" in err
