"""A TLS failure after the probe passed (a certificate rotated to one the configured CA bundle does not
trust, or to one for another host): the cycle's failures, notes and log carry the probe's hint."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.report import report_text
from replicator.testing import MemoryScimServer

TOKEN = "rotation-test-token"
UNTRUSTED_HINT = ("; set destination.ca_bundle to a PEM file with the CA that signed it (destination.verify_tls "
                  "= false skips the check: for testing only)")
OTHER_HOST_HINT = "; is the host in destination.url the one its certificate names?"


@pytest.fixture
async def source() -> AsyncIterator[MemoryScimServer]:
    server = MemoryScimServer(bearer_token=TOKEN)
    await server.start()
    for i in range(3):
        server.add_user({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{i}"})
    yield server
    await server.stop()


async def rotating_destination(context: ssl.SSLContext, rotate: Callable[[], None]
                               ) -> tuple[MemoryScimServer, web.AppRunner, str]:
    """A destination over TLS that closes every connection (each request makes a new handshake) and
    calls `rotate` (changes the certificate `context` serves) once it has answered the probe."""
    destination = MemoryScimServer(bearer_token=TOKEN)

    @web.middleware
    async def rotate_after_probe(request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        response = await handler(request)
        response.force_close()
        if request.path.endswith("/ServiceProviderConfig"):
            rotate()
        return response

    app = destination.make_app()
    app.middlewares.append(rotate_after_probe)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return destination, runner, f"https://127.0.0.1:{runner.addresses[0][1]}/v2"


@pytest.mark.parametrize(("rotated_to", "hint"), [
    ("another CA's certificate", UNTRUSTED_HINT),
    ("a certificate for another host", OTHER_HOST_HINT),
])
async def test_a_certificate_rotated_after_the_probe_gets_the_probes_hint(
        source: MemoryScimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, rotated_to: str, hint: str) -> None:
    """The destination's certificate changes after the probe: every failure, note and log line that
    names the TLS failure also names the side, its URL and the setting to check."""
    trusted = trustme.CA()
    bundle = tmp_path / "ca.pem"
    trusted.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trusted.issue_cert("127.0.0.1").configure_cert(context)
    rotated = trustme.CA().issue_cert("127.0.0.1") if rotated_to == "another CA's certificate" \
        else trusted.issue_cert("other.example")
    destination, runner, url = await rotating_destination(context, lambda: rotated.configure_cert(context))
    config = Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                    destination=SideConfig(url=url, token=TOKEN, ca_bundle=str(bundle)),
                    state=str(tmp_path / "s.db"))
    caplog.set_level(logging.WARNING)
    try:
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
    finally:
        await runner.cleanup()
    assert destination.request_log == [("GET", "/v2/ServiceProviderConfig")]  # the probe passed, nothing after
    assert result.outcome == "partial" and [name for _, name, _ in result.failures] == ["u0", "u1", "u2"]
    tls_lines = [line for line in report_text(result).splitlines() + caplog.messages if "certificate" in line]
    assert len(tls_lines) >= 3 + 3  # each failure in the report and in the log
    for line in tls_lines:
        assert f"destination {url}: GET /v2/" in line and line.endswith(hint), line
