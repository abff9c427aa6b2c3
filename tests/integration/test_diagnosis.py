"""Diagnosis before damage: a wrong base path, a server that is not SCIM, refused or missing credentials
and an unreachable host each stop a run before any write with one message naming the side, the URL,
the status and what to try (exit 3); `check` reports the same, one line per check, writing nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.errors import AuthError, ProtocolError
from replicator.testing import MemoryScimServer
from replicator.testing.options import Faults
from tests.harness import free_port, writes

TOKEN = "diagnosis-test-token"
USER_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    for i in range(3):
        source.add_user({"schemas": USER_SCHEMA, "userName": f"user{i}"})
    yield source, destination
    await source.stop()
    await destination.stop()


@pytest.fixture
async def foreign_server() -> AsyncIterator[str]:
    """A web server that is not SCIM: HTML under /html, JSON without SCIM schemas under /json."""

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><html><body>Welcome</body></html>", content_type="text/html")

    async def plain_json(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": "1.2"})

    app = web.Application()
    app.router.add_get("/html/{tail:.*}", html)
    app.router.add_get("/json/{tail:.*}", plain_json)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def config_for(source: str, destination: str, state: Path, *, destination_token: str | None = TOKEN) -> Config:
    return Config(source=SideConfig(url=source, token=TOKEN), destination=SideConfig(url=destination,
                  token=destination_token), state=str(state))


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "replicator", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode if process.returncode is not None else -1, out.decode(), err.decode()


def cli_env(source: str, destination: str, state: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SCIMREP_SOURCE_URL": source, "SCIMREP_SOURCE_TOKEN": TOKEN,
            "SCIMREP_DESTINATION_URL": destination, "SCIMREP_DESTINATION_TOKEN": TOKEN,
            "SCIMREP_STATE": str(state), "SCIMREP_LOG_LEVEL": "error", **extra}


def wrong_path(url: str) -> str:
    return url.removesuffix("/v2") + "/scim"


async def test_wrong_destination_path_stops_dry_run_and_run_before_any_write(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A destination URL ending in /scim instead of /scim/v2: dry-run and run exit 3 with one line naming
    the side, the URL, the 404s and the /v2 hint; nothing is written."""
    source, destination = pair
    env = cli_env(source.base_url, wrong_path(destination.base_url), tmp_path / "s.db")
    for args in (("run", "--once", "--dry-run"), ("run", "--once")):
        code, out, err = await cli(env, *args)
        assert code == 3, (args, out, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for words in ("destination", wrong_path(destination.base_url), "/scim/ServiceProviderConfig",
                      "/scim/Users answered 404", "does it end in /v2?", "PingOne's SCIM base is"):
            assert words in err, (words, err)
    assert writes(destination.counts()) == 0 and not destination.users


async def test_wrong_source_path_is_said_not_nothing_to_do(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong source path stops the cycle with a ProtocolError naming the source, not an empty success."""
    source, destination = pair
    config = config_for(wrong_path(source.base_url), destination.base_url, tmp_path / "s.db")
    with pytest.raises(ProtocolError, match=r"^source .* is not a SCIM base URL: .* answered 404"):
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert not destination.request_log  # the source is probed first: the destination is never touched


@pytest.mark.parametrize(("path", "words"), [("html", "an HTML page"), ("json", "JSON without SCIM schemas")])
async def test_a_server_that_is_not_scim_is_named(pair, foreign_server: str, tmp_path: Path, path: str,
                                                  words: str) -> None:  # type: ignore[no-untyped-def]
    """A destination answering HTML (or JSON without SCIM schemas) is said to be not SCIM, before any write."""
    source, _ = pair
    url = f"{foreign_server}/{path}/v2"
    config = config_for(source.base_url, url, tmp_path / "s.db")
    with pytest.raises(ProtocolError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    message = str(caught.value)
    assert message.startswith(f"destination {url} does not answer as SCIM: GET /{path}/v2/ServiceProviderConfig "
                              f"answered 200 with {words}, expected JSON with schemas "
                              "[urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig]"), message


async def test_refused_credentials_name_the_setting_that_carries_them(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 401 says which setting carried the refused credentials; the token itself is never shown."""
    source, destination = pair
    config = config_for(source.base_url, destination.base_url, tmp_path / "s.db", destination_token="fake-wrong-tok")
    with pytest.raises(AuthError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    message = str(caught.value)
    assert message == (f"destination {destination.base_url}: GET /v2/ServiceProviderConfig answered 401: the server "
                       "refused our credentials (the bearer token in destination.token was sent); check that they "
                       "are current and meant for this server")
    assert writes(destination.counts()) == 0


async def test_missing_credentials_are_said_missing_not_refused(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A 401 when no credentials are configured says so and names the settings to set."""
    source, destination = pair
    config = config_for(source.base_url, destination.base_url, tmp_path / "s.db", destination_token=None)
    with pytest.raises(AuthError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    message = str(caught.value)
    assert "refused our credentials" not in message
    assert "answered 401: the server requires credentials and none are configured; set destination.token" in message
    assert writes(destination.counts()) == 0


async def test_refused_connection_names_host_port_and_cause_at_once(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A closed port: exit 3 in well under the 13 s of silent retries, naming host:port and "refused"."""
    source, _ = pair
    port = free_port()  # bound and closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v2"
    started = time.monotonic()
    code, out, err = await cli(cli_env(source.base_url, url, tmp_path / "s.db"), "run", "--once")
    elapsed = time.monotonic() - started
    assert code == 3, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"destination {url} is unreachable" in err and f"127.0.0.1:{port}: connection refused" in err, err
    assert elapsed < 6, elapsed  # (a subprocess start included; the retries took 13.7 s)


async def test_the_first_retry_is_logged_once_with_what_is_retried(pair, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Retries are no longer silent: the first says at warning level what is retried; the rest are counted."""
    source, destination = pair
    destination.faults = Faults(script=[503, 503, 503], retry_after="0")
    with caplog.at_level(logging.WARNING, logger="replicator.scim"):
        result = await replicate(config_for(source.base_url, destination.base_url, tmp_path / "s.db"),
                                 mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.summary()
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 1 and result.destination_flow["retries"] == 3, (retried, result.destination_flow)
    assert retried[0].startswith("destination: retrying after GET /v2/ServiceProviderConfig answered 503"), retried


async def test_check_reports_each_side_and_exits_with_the_first_failure(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`check`: ok lines and exit 0 when both sides answer; a FAILED line and exit 3 for a wrong
    destination path; FAILED config and exit 2 for bad settings; never a write."""
    source, destination = pair
    state = tmp_path / "s.db"
    code, out, err = await cli(cli_env(source.base_url, destination.base_url, state), "check")
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 7, out
    assert lines[0].startswith("ok      config: source ")
    assert f"ok      source {source.base_url} answers as SCIM (ServiceProviderConfig)" in lines
    assert "ok      source: GET /v2/Users reads Users: 1 read of 3 (read only: check writes nothing)" in lines
    assert "ok      destination: GET /v2/Groups reads Groups: 0 read of 0 (read only: check writes nothing)" in lines

    code, out, err = await cli(cli_env(source.base_url, wrong_path(destination.base_url), state), "check")
    assert code == 3, (out, err)
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].startswith(f"FAILED  destination {wrong_path(destination.base_url)} is "
                                                     "not a SCIM base URL"), out
    assert "ok      source: GET /v2/Groups reads Groups" in out

    code, out, err = await cli(cli_env(source.base_url, destination.base_url, state, SCIMREP_CONCURRENCY="0"),
                               "check")
    assert code == 2 and out.startswith("FAILED  config: concurrency must be between 1 and 1024"), (out, err)
    assert writes(destination.counts()) == 0 and writes(source.counts()) == 0
    assert not state.exists()  # check neither opens nor locks the state
