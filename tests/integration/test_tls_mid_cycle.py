"""A certificate refused after the probe passed (rotated to one the configured CA bundle does not trust,
or to one for another host): every request there would fail alike, so the cycle stops at the first, as
for refused credentials (exit 3), with one message naming the side, its URL, the request and the
setting to check; it is not met object after object until the "destination unreachable" limit."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from replicator.app import Side, replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.errors import CertificateError
from replicator.pingone.platform import PlatformApi
from replicator.scim.auth import NoAuth
from replicator.testing import MemoryScimServer

TOKEN = "rotation-test-token"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def untrusted_hint(side: str) -> str:
    return (f"; set {side}.ca_bundle to a PEM file with the CA that signed it ({side}.verify_tls = false skips "
            "the check: for testing only)")


OTHER_HOST_HINT = "; is the host in destination.url the one its certificate names?"


def add_users(server: MemoryScimServer, names: range) -> None:
    for i in names:
        server.add_user({"schemas": [USER_SCHEMA], "userName": f"u{i}"})


@pytest.fixture
async def source() -> AsyncIterator[MemoryScimServer]:
    server = MemoryScimServer(bearer_token=TOKEN)
    await server.start()
    add_users(server, range(12))
    yield server
    await server.stop()


class Rotating:
    """A SCIM server over TLS that closes every connection (each request makes a new handshake) and,
    once `armed`, serves `rotated` (another certificate) from the moment it has answered the probe."""

    def __init__(self, served: trustme.LeafCert, rotated: trustme.LeafCert) -> None:
        self.server = MemoryScimServer(bearer_token=TOKEN)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        served.configure_cert(self.context)
        self.rotated = rotated
        self.armed = True
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        @web.middleware
        async def rotate_after_probe(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                                     ) -> web.StreamResponse:
            response = await handler(request)
            response.force_close()
            if self.armed and request.path.endswith("/ServiceProviderConfig"):
                self.rotated.configure_cert(self.context)
            return response

        app = self.server.make_app()
        app.middlewares.append(rotate_after_probe)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.context).start()
        return f"https://127.0.0.1:{self.runner.addresses[0][1]}/v2"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
def trusted(tmp_path: Path) -> tuple[trustme.CA, str]:
    """The CA the side under test is configured to trust (`ca_bundle`), and its bundle's path."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return authority, str(tmp_path / "ca.pem")


async def refused_certificate(config: Config) -> tuple[str, list[Side]]:
    """Run a cycle that must stop on a certificate refused: its message, and the clients (their requests)."""
    clients: list[Side] = []
    with pytest.raises(CertificateError) as caught:
        await replicate(config, mode=INCREMENTAL, dry_run=False, clients=clients)
    return str(caught.value), clients


def sent(client: Side) -> int:
    """How many requests a side's client sent (a failed handshake counts: the request was attempted)."""
    return sum(client.requests.values())


def rotation(trusted: trustme.CA, rotated_to: str) -> trustme.LeafCert:
    return trustme.CA().issue_cert("127.0.0.1") if rotated_to == "another CA's certificate" \
        else trusted.issue_cert("other.example")


@pytest.mark.parametrize(("rotated_to", "hint"), [
    ("another CA's certificate", untrusted_hint("destination")),
    ("a certificate for another host", OTHER_HOST_HINT),
])
async def test_a_certificate_rotated_after_the_probe_stops_the_cycle_at_its_first_requests(
        source: MemoryScimServer, trusted: tuple[trustme.CA, str], tmp_path: Path, rotated_to: str, hint: str) -> None:
    """The destination's certificate changes after the probe: the first requests that meet it (a first
    copy lists the destination's users and groups side by side) stop the cycle with the side, its URL,
    the request and the setting to check; nothing more is sent there."""
    authority, bundle = trusted
    destination = Rotating(authority.issue_cert("127.0.0.1"), rotation(authority, rotated_to))
    url = await destination.start()
    config = Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                    destination=SideConfig(url=url, token=TOKEN, ca_bundle=bundle), state=str(tmp_path / "s.db"))
    try:
        message, clients = await refused_certificate(config)
    finally:
        await destination.stop()
    assert destination.server.request_log == [("GET", "/v2/ServiceProviderConfig")]  # the probe passed
    assert sent(clients[1]) == 3  # the probe, and the two listings that met the new certificate
    assert message.startswith(f"destination {url}: GET /v2/") and message.endswith(hint), message
    assert not destination.server.users


async def test_a_certificate_refused_mid_cycle_stops_the_writes_at_once(
        source: MemoryScimServer, trusted: tuple[trustme.CA, str], tmp_path: Path) -> None:
    """An incremental cycle with 30 creates to make, whose destination's certificate changed after the
    probe: the writes in flight fail and the cycle stops, where a failure each would go on until ten
    operations in a row had failed (the "destination unreachable" limit)."""
    authority, bundle = trusted
    destination = Rotating(authority.issue_cert("127.0.0.1"), trustme.CA().issue_cert("127.0.0.1"))
    destination.armed = False
    url = await destination.start()
    config = Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                    destination=SideConfig(url=url, token=TOKEN, ca_bundle=bundle),
                    state=str(tmp_path / "s.db"), concurrency=2, min_concurrency=1)
    try:
        first = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert first.outcome == "ok" and len(destination.server.users) == 12
        add_users(source, range(12, 42))
        destination.armed = True
        message, clients = await refused_certificate(config)
    finally:
        await destination.stop()
    # the probe, the destination's groups listed while users are written (the state has none: each
    # cycle lists them), and the writes that were in flight
    assert sent(clients[1]) <= 1 + 1 + config.concurrency
    assert message.startswith(f"destination {url}: ") and message.endswith(untrusted_hint("destination"))
    assert len(destination.server.users) == 12


async def test_a_source_certificate_refused_mid_read_stops_the_cycle(trusted: tuple[trustme.CA, str], tmp_path: Path
                                                                     ) -> None:
    """The source's certificate changes after its probe: the first page read stops the cycle (exit 3, as
    refused credentials), not a read failure for each kind and a partial cycle."""
    authority, bundle = trusted
    rotating = Rotating(authority.issue_cert("127.0.0.1"), trustme.CA().issue_cert("127.0.0.1"))
    add_users(rotating.server, range(3))
    url = await rotating.start()
    destination = MemoryScimServer(bearer_token=TOKEN)
    await destination.start()
    config = Config(source=SideConfig(url=url, token=TOKEN, ca_bundle=bundle),
                    destination=SideConfig(url=destination.base_url or "", token=TOKEN), state=str(tmp_path / "s.db"))
    try:
        message, clients = await refused_certificate(config)
    finally:
        await rotating.stop()
        await destination.stop()
    assert sent(clients[0]) == 2  # the probe, and the first page of users
    assert message.startswith(f"source {url}: GET /v2/Users") and message.endswith(untrusted_hint("source"))
    assert not destination.users


async def test_pingones_platform_api_names_api_url_for_a_certificate_for_another_host(
        trusted: tuple[trustme.CA, str]) -> None:
    """PingOne's Platform API serving a certificate for another host: the message names the setting its
    host comes from (`api_url`), not the side's SCIM `url`; and it is a certificate refused (stops the cycle)."""
    authority, bundle = trusted
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("other.example").configure_cert(context)
    runner = web.AppRunner(web.Application(), access_log=None)  # no route: no request gets past the handshake
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    api_url = f"https://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        async with PlatformApi(api_url, "env-1", auth=NoAuth(), name="destination", ca_bundle=bundle) as api:
            with pytest.raises(CertificateError) as caught:
                await api.call("GET", "users")
    finally:
        await runner.cleanup()
    assert str(caught.value) == (
        f"destination {api_url}/environments/env-1: GET /v1/environments/env-1/users: the server's certificate is "
        "not for this host (CERTIFICATE_VERIFY_FAILED: IP address mismatch, certificate is not valid for "
        "'127.0.0.1'.); is the host in destination.api_url the one its certificate names?")
