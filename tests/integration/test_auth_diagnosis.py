"""Diagnosis before damage for the token endpoint, TLS and `healthcheck`, through the real command line:
one line naming the side, the URL, the cause in words and the setting to check, exit 3 (1 for
`healthcheck`), no retry of a connection that cannot be made, never a secret."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from replicator.testing import MemoryScimServer
from tests.gated import Servers, gated_pair
from tests.harness import free_port
from tests.integration.test_operational_errors import assert_one_line, cli, env_for

TOKEN = "faults-test-token"  # the bearer token of test_operational_errors' env_for
SECRET = "fake-client-secret-x9"


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with gated_pair(TOKEN) as pair:
        yield pair


@pytest.fixture
async def refusing_token_endpoint() -> AsyncIterator[str]:
    """A token endpoint that refuses every client (401 invalid_client, as RFC 6749 5.2 says)."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_client", "error_description": "client authentication failed"},
                                 status=401)

    app = web.Application()
    app.router.add_post("/as/token", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/as/token"
    await runner.cleanup()


def oauth_env(source: MemoryScimServer, destination: MemoryScimServer, tmp: Path, **extra: str) -> dict[str, str]:
    """The destination authenticates with client credentials; logs at warning, so that a retry would show."""
    env = env_for(source, destination, tmp / "state.db", SCIMREP_DESTINATION_CLIENT_ID="worker-app",
                  SCIMREP_DESTINATION_CLIENT_SECRET=SECRET, SCIMREP_LOG_LEVEL="warning", **extra)
    del env["SCIMREP_DESTINATION_TOKEN"]
    return env


def message_of(err: str) -> str:
    """The one message line of stderr (the others are log lines, JSON), checked free of retries and secrets."""
    lines = err.splitlines()
    logs = [json.loads(line)["msg"] for line in lines[:-1]]
    assert not [m for m in logs if "retrying" in m], logs  # the first retry of a side is always logged
    assert "Traceback" not in err and SECRET not in err, err
    return assert_one_line(lines[-1] + "\n")


async def test_an_unreachable_token_endpoint_names_token_url_and_is_not_retried(servers: Servers, tmp_path: Path) -> None:
    """Nothing listens at token_url: one line naming the endpoint, host:port, "connection refused" and
    destination.token_url (not destination.url), exit 3, no retry, no request to the destination."""
    source, destination = servers
    port = free_port()
    env = oauth_env(source, destination, tmp_path, SCIMREP_DESTINATION_TOKEN_URL=f"http://127.0.0.1:{port}/as/token")
    code, _, err = await cli(env, "run", "--once")
    assert code == 3, err
    message = message_of(err)
    assert message == (f"destination token endpoint http://127.0.0.1:{port}/as/token is unreachable: cannot connect "
                       f"to 127.0.0.1:{port}: connection refused (nothing listens on that port); is the server "
                       "running there, and are the host and port in destination.token_url right?")
    assert not destination.request_log


async def test_an_unreachable_pingone_token_endpoint_names_the_settings_it_is_derived_from(
        servers: Servers, tmp_path: Path) -> None:
    """A PingOne destination whose auth_url does not answer: the derived token URL, from
    destination.auth_url and destination.pingone_environment; exit 3 at once (its Platform API retries
    what it retries, but not a token endpoint that never gave a token)."""
    source, destination = servers
    closed = f"http://127.0.0.1:{free_port()}"
    env = oauth_env(source, destination, tmp_path, SCIMREP_DESTINATION_KIND="pingone",
                    SCIMREP_DESTINATION_PINGONE_ENVIRONMENT="env-1", SCIMREP_DESTINATION_AUTH_URL=closed,
                    SCIMREP_DESTINATION_API_URL=f"{closed}/v1", SCIMREP_DESTINATION_SCIM_URL=closed)
    del env["SCIMREP_DESTINATION_URL"]
    code, _, err = await cli(env, "run", "--once")
    assert code == 3, err
    message = message_of(err)
    assert message.startswith(f"destination token endpoint {closed}/env-1/as/token (derived from destination.auth_url "
                              "and destination.pingone_environment) is unreachable: "), message
    assert message.endswith("connection refused (nothing listens on that port); is the server running there, and are "
                            "destination.auth_url and destination.pingone_environment right? (destination.token_url "
                            "sets the token URL itself)"), message


@pytest.mark.parametrize("command", ["run", "check"])
async def test_refused_client_credentials_name_client_id_and_client_secret(
        servers: Servers, refusing_token_endpoint: str, tmp_path: Path, command: str) -> None:
    """401 invalid_client: the credentials were refused, naming destination.client_id and
    destination.client_secret (never the secret) and the other way to send them; exit 3."""
    source, destination = servers
    env = oauth_env(source, destination, tmp_path, SCIMREP_DESTINATION_TOKEN_URL=refusing_token_endpoint)
    code, out, err = await cli(env, *(["run", "--once"] if command == "run" else ["check"]))
    assert code == 3, (out, err)
    expected = (f"destination token endpoint {refusing_token_endpoint} answered 401 (invalid_client - client "
                "authentication failed): it refused the client credentials; check destination.client_id and "
                "destination.client_secret (sent with HTTP basic; destination.token_auth_method = "
                "\"client_secret_post\" sends them the other way)")
    if command == "run":
        assert message_of(err) == expected
    else:
        assert f"FAILED  {expected}" in out.splitlines() and SECRET not in out, out
    assert not destination.request_log


async def test_https_to_a_plain_http_port_says_the_server_does_not_speak_tls(servers: Servers, tmp_path: Path) -> None:
    """https:// at a plain-HTTP port: the side, the URL, OpenSSL's reason and "does it want http://?"; exit 3."""
    source, destination = servers
    url = (destination.base_url or "").replace("http://", "https://")
    env = env_for(source, destination, tmp_path / "state.db", SCIMREP_DESTINATION_URL=url)
    code, _, err = await cli(env, "run", "--once")
    assert code == 3, err
    assert assert_one_line(err) == (f"destination {url}: TLS handshake failed (WRONG_VERSION_NUMBER: the server does "
                                    "not speak TLS there; does it want http://?)")


async def test_an_untrusted_certificate_names_ca_bundle(servers: Servers, tmp_path: Path) -> None:
    """A certificate from a CA we do not trust: the side, the URL, OpenSSL's words and
    destination.ca_bundle (verify_tls = false for testing); exit 3, in `check` too."""
    source, destination = servers
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(destination.make_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        url = f"https://127.0.0.1:{runner.addresses[0][1]}/v2"
        env = env_for(source, destination, tmp_path / "state.db", SCIMREP_DESTINATION_URL=url)
        code, _, err = await cli(env, "run", "--once")
        expected = (f"destination {url}: the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED: unable "
                    "to get local issuer certificate); set destination.ca_bundle to a PEM file with the CA that "
                    "signed it (destination.verify_tls = false skips the check: for testing only)")
        assert code == 3 and assert_one_line(err) == expected, err
        code, out, err = await cli(env, "check")
        assert code == 3 and f"FAILED  {expected}" in out.splitlines(), (out, err)
    finally:
        await runner.cleanup()


async def test_healthcheck_without_a_daemon_names_listen_in_one_line() -> None:
    """`healthcheck` where no daemon listens: exit 1, one line naming `listen`, the address and
    "no daemon answers" (not urllib's `<urlopen error ...>`)."""
    address = f"127.0.0.1:{free_port()}"
    code, out, err = await cli(dict(os.environ), "healthcheck", "--listen", address)
    assert code == 1 and not out
    assert assert_one_line(err) == (f"healthcheck: no daemon answers on listen {address}: connection refused; is it "
                                    "running, with this listen?")
