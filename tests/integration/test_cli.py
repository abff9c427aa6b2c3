"""The command line as a user runs it: a subprocess against in-memory SCIM servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from replicator.testing import MemoryScimServer
from tests.harness import writes

SOURCE_TOKEN = "fake-src-tok"
DESTINATION_TOKEN = "fake-dst-tok"


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def servers():  # type: ignore[no-untyped-def]
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    destination = MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    urls = (await source.start(), await destination.start())
    for i in range(5):
        source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"user{i}",
                         "title": "Tester"})
    source.add_group({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone",
                      "members": [{"value": uid} for uid in source.users]})
    yield source, destination, urls
    await source.stop()
    await destination.stop()


def endpoint_flags(urls: tuple[str, str], state: Path) -> list[str]:
    return ["--source-url", urls[0], "--source-token", SOURCE_TOKEN,
            "--destination-url", urls[1], "--destination-token", DESTINATION_TOKEN, "--state", str(state)]


async def test_full_then_once_json_report_and_zero_writes(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`run --full` copies everything (exit 0); `run --once --output json` then reports no writes."""
    _source, destination, urls = servers
    state = tmp_path / "state.db"
    code, out, err = await cli("run", "--full", *endpoint_flags(urls, state))
    assert code == 0, err
    assert "created 6" in out
    assert len(destination.users) == 5 and len(destination.groups) == 1
    code, out, err = await cli("run", "--once", "--output", "json", *endpoint_flags(urls, state))
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"] == {"unchanged": 6}
    assert writes(report["destination_requests"]) == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


async def test_dry_run_prints_plan_and_writes_nothing(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`--dry-run` prints each planned change (text and JSON) and leaves the destination empty."""
    _source, destination, urls = servers
    code, out, err = await cli("run", "--once", "--dry-run", *endpoint_flags(urls, tmp_path / "s.db"))
    assert code == 0, err
    assert "plan (dry run, nothing written)" in out
    assert "create  User  user3" in out
    code, out, err = await cli("run", "--once", "--dry-run", "--output", "json", *endpoint_flags(urls, tmp_path / "s.db"))
    plan = json.loads(out)
    assert {c["action"] for c in plan["changes"]} == {"create"}
    assert len(plan["changes"]) == 6
    assert destination.counts().get("POST", 0) == 0 and not destination.users


async def test_configuration_from_toml_and_environment(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Settings come from a TOML file and SCIMREP_* variables (secrets from *_FILE), flags winning."""
    _source, destination, urls = servers
    secret = tmp_path / "dest-token"
    secret.write_text(DESTINATION_TOKEN + "\n")
    config = tmp_path / "replicator.toml"
    config.write_text(f'state = "{tmp_path / "toml.db"}"\nconcurrency = 4\n[source]\nurl = "{urls[0]}"\n'
                      f'[destination]\nurl = "http://127.0.0.1:9/v2"\n')
    env = {"SCIMREP_SOURCE_TOKEN": SOURCE_TOKEN, "SCIMREP_DESTINATION_TOKEN_FILE": str(secret)}
    code, _out, err = await cli("run", "--once", "--config", str(config), "--destination-url", urls[1], env=env)
    assert code == 0, err
    assert len(destination.users) == 5


async def test_bad_configuration_names_the_field_and_contacts_nothing(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bad settings exit 2 with one line naming the field, before any request."""
    source, destination, urls = servers
    code, _, err = await cli("run", "--once", "--source-url", urls[0], "--state", str(tmp_path / "x.db"))
    assert code == 2 and "destination.url" in err and "Traceback" not in err
    config = tmp_path / "bad.toml"
    config.write_text(f'[source]\nurl = "{urls[0]}"\nurll = "typo"\n')
    code, _, err = await cli("run", "--once", "--config", str(config), "--destination-url", urls[1])
    assert code == 2 and "source.urll" in err
    code, _, err = await cli("run", "--once", *endpoint_flags(urls, tmp_path / "x.db"), "--concurrency", "0")
    assert code == 2 and "concurrency" in err
    assert not source.request_log and not destination.request_log


async def test_refused_credentials_exit_3_without_leaking_the_token(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong token stops the run with exit 3 and a one-line message that does not contain the token."""
    _source, _destination, urls = servers
    wrong = "fake-wrong-tok"
    flags = endpoint_flags(urls, tmp_path / "s.db")
    flags[flags.index(DESTINATION_TOKEN)] = wrong
    code, out, err = await cli("run", "--once", *flags)
    assert code == 3
    assert "refused our credentials" in err and "Traceback" not in err
    for text in (out, err, (tmp_path / "s.db").read_bytes().decode("latin-1")):
        assert wrong not in text and SOURCE_TOKEN not in text


async def test_json_output_reports_a_fatal_error_on_stdout(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With --output json, a run that stops on a fatal error or bad settings still prints a JSON report
    (outcome failed, the error, the exit code), without the secret."""
    _source, _destination, urls = servers
    wrong = "fake-wrong-tok"
    flags = endpoint_flags(urls, tmp_path / "s.db")
    flags[flags.index(DESTINATION_TOKEN)] = wrong
    code, out, _ = await cli("run", "--once", "--output", "json", *flags)
    report = json.loads(out)
    assert code == 3 and report["outcome"] == "failed" and report["exit_code"] == 3
    assert "refused our credentials" in report["error"] and wrong not in out
    code, out, _ = await cli("run", "--full", "--output", "json", *endpoint_flags(urls, tmp_path / "s.db"),
                             "--concurrency", "0")
    report = json.loads(out)
    assert code == 2 and report["outcome"] == "failed" and "concurrency" in report["error"]


async def test_status_lists_runs_and_failures(servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`status` shows tracked objects, the last runs and each failed resource with its reason."""
    source, destination, urls = servers
    source.users["broken"] = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "broken",
                              "displayName": "no userName here"}
    state = tmp_path / "s.db"
    code, _, err = await cli("run", "--once", *endpoint_flags(urls, state))
    assert code == 1, err
    assert len(destination.users) == 5
    code, out, err = await cli("status", "--state", str(state))
    assert code == 0, err
    assert "5 users, 1 groups replicated; 1 failed" in out
    assert " incremental partial: created 6, failed 1" in out
    assert "failed User broken (attempts 1): has no usable userName" in out
    code, out, err = await cli("status", "--state", str(state), "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tracked"] == {"User": 5, "Group": 1} and report["runs"][0]["outcome"] == "partial"
    assert report["failures"][0]["error"] == "has no usable userName"
    code, _, err = await cli("status", "--state", str(tmp_path / "missing.db"))
    assert code == 2 and "does not exist" in err and not (tmp_path / "missing.db").exists()


async def test_status_of_a_missing_state_file_reports_json_too(tmp_path: Path) -> None:
    """`status --output json` on a state file that does not exist prints the JSON report (exit 2), as other stops do."""
    code, out, err = await cli("status", "--state", str(tmp_path / "missing.db"), "--output", "json")
    assert code == 2 and "does not exist" in err
    report = json.loads(out)
    assert report["exit_code"] == 2 and "missing.db does not exist" in report["error"]
