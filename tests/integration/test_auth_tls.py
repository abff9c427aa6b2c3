"""Authentication and transport: OAuth2 client credentials (basic and post, refresh on 401), TLS checks,
and secrets kept out of logs, reports and state."""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.errors import AuthError, TLSError
from replicator.report import report_text
from replicator.testing import Faults, MemoryScimServer

CLIENT_ID = "worker-app-id"
CLIENT_SECRET = "fake-secret-x1"
GOOD_TOKEN = "fake-token-x2"


class TokenEndpoint:
    """An OAuth2 token endpoint that checks client credentials and hands out tokens in order."""

    def __init__(self, tokens: list[str], *, method: str, echo: bool = False) -> None:
        self.tokens, self.method, self.calls, self.echo = tokens, method, 0, echo

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self.method == "client_secret_basic":
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            ok = request.headers.get("Authorization") == expected
        else:
            ok = form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        if not ok:
            said = f"bad credentials {dict(form)} {request.headers.get('Authorization')}" if self.echo else "bad credentials"
            return web.json_response({"error": "invalid_client", "error_description": said}, status=401)
        token = self.tokens[min(self.calls, len(self.tokens) - 1)]
        self.calls += 1
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 3600})


@pytest.fixture
async def token_site() -> AsyncIterator[tuple[dict[str, TokenEndpoint], str]]:
    app = web.Application()
    runner = web.AppRunner(app)
    holder: dict[str, TokenEndpoint] = {}

    async def route(request: web.Request) -> web.Response:
        return await holder["endpoint"].handle(request)

    app.router.add_post("/as/token", route)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield holder, f"http://127.0.0.1:{runner.addresses[0][1]}/as/token"
    await runner.cleanup()


async def _servers(**kwargs: object) -> tuple[MemoryScimServer, MemoryScimServer]:
    source = MemoryScimServer(bearer_token="plain-source-token")
    destination = MemoryScimServer(bearer_token=GOOD_TOKEN, **kwargs)  # type: ignore[arg-type]
    await source.start()
    for i in range(3):
        source.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{i}"})
    return source, destination


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_oauth_client_credentials_refreshes_once_on_401(token_site, tmp_path: Path, method: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """A stale token gets 401, one refresh fetches a good one, and the run succeeds; secrets never reach the log."""
    holder, token_url = token_site
    endpoint = holder["endpoint"] = TokenEndpoint(["stale-token", GOOD_TOKEN], method=method)
    source, destination = await _servers()
    await destination.start()
    config = Config(
        source=SideConfig(url=source.base_url or "", token="plain-source-token"),
        destination=SideConfig(url=destination.base_url or "", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               token_url=token_url, token_auth_method=method),  # type: ignore[arg-type]
        state=str(tmp_path / "s.db"),
    )
    caplog.set_level(logging.DEBUG)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok" and len(destination.users) == 3
    assert endpoint.calls == 2
    text = caplog.text + report_text(result) + repr(config) + (tmp_path / "s.db").read_bytes().decode("latin-1")
    for secret in (CLIENT_SECRET, GOOD_TOKEN, "plain-source-token"):
        assert secret not in text
    await source.stop()
    await destination.stop()


async def test_refused_client_credentials_stop_the_cycle(token_site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A token endpoint refusing the client is an AuthError naming the endpoint, not the secret."""
    holder, token_url = token_site
    holder["endpoint"] = TokenEndpoint([GOOD_TOKEN], method="client_secret_post")
    source, destination = await _servers()
    await destination.start()
    config = Config(
        source=SideConfig(url=source.base_url or "", token="plain-source-token"),
        destination=SideConfig(url=destination.base_url or "", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                               token_url=token_url),  # basic, while the endpoint expects post
        state=str(tmp_path / "s.db"),
    )
    with pytest.raises(AuthError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert "invalid_client" in str(caught.value) and CLIENT_SECRET not in str(caught.value)
    assert not destination.users
    await source.stop()
    await destination.stop()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_token_endpoint_echoing_the_secret_does_not_leak_it(token_site, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    """A token endpoint whose error_description echoes the posted form and the Authorization header:
    the client secret does not reach the error, in any of its encodings."""
    holder, token_url = token_site
    holder["endpoint"] = TokenEndpoint([GOOD_TOKEN], method="other", echo=True)  # refuses every client
    source, destination = await _servers()
    await destination.start()
    secret = "fake secret/with+chars=x3"
    config = Config(
        source=SideConfig(url=source.base_url or "", token="plain-source-token"),
        destination=SideConfig(url=destination.base_url or "", client_id=CLIENT_ID, client_secret=secret,
                               token_url=token_url, token_auth_method=method),  # type: ignore[arg-type]
        state=str(tmp_path / "s.db"),
    )
    with pytest.raises(AuthError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False)
    message = str(caught.value)
    assert "invalid_client" in message and "***" in message
    for form in (secret, "fake+secret%2Fwith%2Bchars%3Dx3", "fake%20secret%2Fwith%2Bchars%3Dx3",
                 base64.b64encode(f"{CLIENT_ID}:fake%20secret%2Fwith%2Bchars%3Dx3".encode()).decode()):
        assert form not in message
    await source.stop()
    await destination.stop()


async def test_a_destination_echoing_the_token_in_an_error_does_not_leak_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A 400 whose detail echoes the Authorization header: the token reaches neither the failure
    reason, the log, the report nor the state file."""
    source, destination = await _servers()
    destination.faults = Faults(refuse_values={"u1"}, echo_authorization=True)
    await destination.start()
    config = Config(source=SideConfig(url=source.base_url or "", token="plain-source-token"),
                    destination=SideConfig(url=destination.base_url or "", token=GOOD_TOKEN),
                    state=str(tmp_path / "s.db"))
    caplog.set_level(logging.DEBUG)
    result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    assert result.counts["failed"] == 1 and "Authorization: Bearer ***" in result.failures[0][2]
    text = caplog.text + report_text(result) + (tmp_path / "s.db").read_bytes().decode("latin-1")
    assert GOOD_TOKEN not in text
    await source.stop()
    await destination.stop()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_is_verified_with_ca_bundle_and_insecure_opt_out(authority: trustme.CA, tmp_path: Path) -> None:
    """An untrusted certificate fails fast (TLSError, no retries); a CA bundle or verify_tls=false lets it through."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    source, destination = await _servers()
    runner = web.AppRunner(destination.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/v2"

    def config(**tls: object) -> Config:
        return Config(source=SideConfig(url=source.base_url or "", token="plain-source-token"),
                      destination=SideConfig(url=url, token=GOOD_TOKEN, **tls),  # type: ignore[arg-type]
                      state=str(tmp_path / "s.db"))

    with pytest.raises(TLSError):
        await replicate(config(), mode=INCREMENTAL, dry_run=False)
    assert not destination.request_log
    trusted = await replicate(config(ca_bundle=str(bundle)), mode=INCREMENTAL, dry_run=False)
    assert trusted.outcome == "ok" and len(destination.users) == 3
    insecure = await replicate(config(verify_tls=False), mode=INCREMENTAL, dry_run=False)
    assert insecure.outcome == "ok"
    await runner.cleanup()
    await source.stop()
