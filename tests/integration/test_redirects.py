"""Redirects: none leaves the configured origin (the SCIM client's requests and the OAuth token request);
same-origin ones are followed, within a hop limit and without turning a write into a GET.

Each origin is a real aiohttp server on its own 127.0.0.1 port; the CLI runs as a subprocess."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from replicator.app import replicate
from replicator.config import Config, SideConfig
from replicator.cycle import INCREMENTAL
from replicator.errors import RedirectError
from replicator.scim.auth import StaticAuth, redirect_target
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
from replicator.scim.retry import RetryPolicy
from replicator.testing import MemoryScimServer
from tests.integration.test_cli import cli

SOURCE_TOKEN = "fake-src-tok"
DESTINATION_TOKEN = "fake-dst-tok"
CLIENT_SECRET = "fake-client-secret-r7"
QUERY_SECRET = "leaky-signature-q9"  # every Location we send carries it in its query: it must never be shown
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; yield its origin (http://127.0.0.1:port)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Elsewhere:
    """The other origin: answers anything with an empty ListResponse that is also a token (what made
    the original run say "nothing to do"), and notes every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        async def anything(request: web.Request) -> web.Response:
            self.requests.append((request.method, request.path))
            return web.json_response({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                                      "totalResults": 0, "Resources": [],
                                      "access_token": "elsewhere-token", "expires_in": 3600})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        return app


def redirecting(server: MemoryScimServer, rules: dict[str, tuple[int, str | None]]) -> web.Application:
    """The memory server's app behind a middleware: a request whose path starts with a rule's prefix is
    answered the rule's status with Location = target + the rest of the path + the query (+ a secret);
    a rule whose target is None answers without Location. Rules may be changed while it runs."""

    @web.middleware
    async def redirect(request: web.Request, handler: Any) -> web.StreamResponse:
        for prefix, (status, target) in rules.items():
            if request.path.startswith(prefix):
                server.request_log.append((request.method, request.path))
                if target is None:
                    return web.Response(status=status)
                query = request.query_string + "&" if request.query_string else ""
                location = f"{target}{request.path[len(prefix):]}?{query}sig={QUERY_SECRET}"
                return web.Response(status=status, headers={"Location": location})
        return await handler(request)

    app = server.make_app()
    app.middlewares.insert(0, redirect)
    return app


def seeded_source() -> MemoryScimServer:
    source = MemoryScimServer(bearer_token=SOURCE_TOKEN)
    for i in range(3):
        source.add_user({"schemas": [USER_SCHEMA], "userName": f"user{i}"})
    return source


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[Elsewhere, str]]:
    other = Elsewhere()
    async with serving(other.app()) as origin:
        yield other, origin


def config(source_url: str, destination_url: str, state: Path) -> Config:
    return Config(source=SideConfig(url=source_url, token=SOURCE_TOKEN),
                  destination=SideConfig(url=destination_url, token=DESTINATION_TOKEN), state=str(state))


# -- to another origin: never followed, the run stops with exit 3 -----------------------------------------

CROSS_ORIGIN_CASES = {
    # case: (side whose server redirects, path prefix redirected, path the Location names)
    "destination Users": ("destination", "/v2/Users", "/v2/Users"),
    "source Users": ("source", "/v2/Users", "/v2/Users"),
    "source ServiceProviderConfig": ("source", "/v2/ServiceProviderConfig", "/v2/ServiceProviderConfig"),
    "destination ServiceProviderConfig": ("destination", "/v2/ServiceProviderConfig", "/v2/ServiceProviderConfig"),
    "destination token endpoint": ("destination", "/as/token", "/as/token"),
}


@pytest.mark.parametrize("case", CROSS_ORIGIN_CASES)
async def test_a_redirect_to_another_origin_stops_run_once_with_exit_3(
        case: str, elsewhere: tuple[Elsewhere, str], tmp_path: Path) -> None:
    """A 302 to another port (from /Users, ServiceProviderConfig or the token endpoint) is not followed:
    the other origin gets no request, nothing is written, and `run --once` exits 3 naming the Location
    without its query or any secret."""
    other, other_origin = elsewhere
    side, prefix, named = CROSS_ORIGIN_CASES[case]
    source, destination = seeded_source(), MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    rules = {prefix: (302, other_origin + named)}
    async with serving(redirecting(source, rules if side == "source" else {})) as source_origin, \
            serving(redirecting(destination, rules if side == "destination" else {})) as destination_origin:
        flags = ["--source-url", source_origin + "/v2", "--source-token", SOURCE_TOKEN,
                 "--destination-url", destination_origin + "/v2", "--state", str(tmp_path / "s.db")]
        if case == "destination token endpoint":
            flags += ["--destination-client-id", "worker-app", "--destination-client-secret", CLIENT_SECRET,
                      "--destination-token-url", destination_origin + "/as/token"]
        else:
            flags += ["--destination-token", DESTINATION_TOKEN]
        code, out, err = await cli("run", "--once", *flags)
    assert code == 3, err
    assert other.requests == []
    assert f"redirect to {other_origin}{named} not followed" in err
    redirected_origin = source_origin if side == "source" else destination_origin
    assert f"not the configured origin {redirected_origin}" in err
    assert "Traceback" not in err
    for secret in (QUERY_SECRET, SOURCE_TOKEN, DESTINATION_TOKEN, CLIENT_SECRET):
        assert secret not in out + err
    assert not destination.users and ("POST", "/v2/Users") not in destination.request_log


async def test_a_source_users_read_redirected_to_another_origin_is_not_followed(
        elsewhere: tuple[Elsewhere, str]) -> None:
    """The reported case: the source's /Users answering 302 to another port raises RedirectError naming
    the Location, and the other origin (which would answer an empty directory) gets no request."""
    other, other_origin = elsewhere
    source = seeded_source()
    async with serving(redirecting(source, {"/v2/Users": (302, other_origin + "/v2/Users")})) as origin:
        async with ScimClient(origin + "/v2", auth=StaticAuth.bearer(SOURCE_TOKEN), name="source") as client:
            report = ReadReport(kind="User")
            with pytest.raises(RedirectError) as caught:
                async for _ in client.iter_pages("User", report):
                    pass
    assert other.requests == []
    assert str(caught.value) == (f"GET /v2/Users on source answered 302: redirect to {other_origin}/v2/Users "
                                 f"not followed (not the configured origin {origin})")
    assert not report.complete and source.request_log == [("GET", "/v2/Users")]  # not retried


# -- within the origin: followed, with the method and body a 307/308 keeps -------------------------------

async def test_same_origin_redirects_are_followed_for_reads_and_308_writes(tmp_path: Path) -> None:
    """A source under /old/v2 answering 302 to /v2 (relative Location, query kept) is read through it, and
    a destination under /old/v2 answering 308 gets its POSTs at /v2 with the body: the run replicates."""
    source, destination = seeded_source(), MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    async with serving(redirecting(source, {"/old": (302, "")})) as source_origin, \
            serving(redirecting(destination, {"/old": (308, "")})) as destination_origin:
        result = await replicate(config(source_origin + "/old/v2", destination_origin + "/old/v2",
                                        tmp_path / "s.db"), mode=INCREMENTAL, dry_run=False)
    assert result.outcome == "ok", result.notes
    assert sorted(u["userName"] for u in destination.users.values()) == ["user0", "user1", "user2"]
    assert ("GET", "/old/v2/Users") in source.request_log and ("GET", "/v2/Users") in source.request_log
    assert destination.request_log.count(("POST", "/old/v2/Users")) == 3
    assert destination.request_log.count(("POST", "/v2/Users")) == 3
    # each hop is a request the server received, and counted as one
    assert result.destination_requests["POST"] == 6


async def test_a_302_to_a_write_is_refused_not_turned_into_a_get(tmp_path: Path) -> None:
    """A destination answering 302 to a POST (same origin) stops the cycle with a RedirectError saying so;
    the POST is not re-sent as a GET (aiohttp's own following would list /v2/Users instead)."""
    source, destination = seeded_source(), MemoryScimServer(bearer_token=DESTINATION_TOKEN)
    async with serving(source.make_app()) as source_origin, \
            serving(redirecting(destination, {"/old": (302, "")})) as destination_origin:
        with pytest.raises(RedirectError) as caught:
            await replicate(config(source_origin + "/v2", destination_origin + "/old/v2", tmp_path / "s.db"),
                            mode=INCREMENTAL, dry_run=False)
    message = str(caught.value)
    assert message.startswith("POST /old/v2/Users on destination answered 302")
    assert f"redirect to {destination_origin}/v2/Users not followed (it would turn the POST into a GET" in message
    assert QUERY_SECRET not in message
    assert not destination.users
    assert ("POST", "/v2/Users") not in destination.request_log
    # reads were followed (discovery, the listing); no GET of /v2/Users came after the first POST
    first_post = destination.request_log.index(("POST", "/old/v2/Users"))
    assert ("GET", "/v2/Users") not in destination.request_log[first_post:]


async def test_a_redirect_without_location_is_a_clear_error() -> None:
    """A 302 without a Location header raises RedirectError saying so (not an unexplained 302 status)."""
    server = seeded_source()
    async with serving(redirecting(server, {"/v2/Users": (302, None)})) as origin:
        async with ScimClient(origin + "/v2", auth=StaticAuth.bearer(SOURCE_TOKEN), name="source",
                              retry=RetryPolicy(attempts=3, wait_initial=0.01)) as client:
            with pytest.raises(RedirectError, match=r"^GET /v2/Users on source answered 302 without a Location"):
                async for _ in client.iter_pages("User", ReadReport(kind="User")):
                    pass
    assert server.request_log == [("GET", "/v2/Users")]  # not retried


async def test_a_redirect_loop_stops_after_the_hop_limit() -> None:
    """A path redirecting to itself is followed 5 times, then refused as a loop (6 requests, no retry),
    not reported as a retryable transport error after aiohttp's 10."""
    server = seeded_source()
    async with serving(redirecting(server, {"/loop": (307, "/loop")})) as origin:
        async with ScimClient(origin + "/loop/v2", auth=StaticAuth.bearer(SOURCE_TOKEN), name="source",
                              retry=RetryPolicy(attempts=3, wait_initial=0.01)) as client:
            with pytest.raises(RedirectError, match=r"more than 5 redirects, a loop\?") as caught:
                await client.get("User", "u-1")
    assert server.request_log == [("GET", "/loop/v2/Users/u-1")] * 6
    assert QUERY_SECRET not in str(caught.value)


# -- the rule itself (pure) -------------------------------------------------------------------------------

HERE = URL("https://scim.example/v2/Users")


@pytest.mark.parametrize(("location", "followed"), [
    ("https://scim.example:443/v2/Users/", "https://scim.example/v2/Users/"),  # the default port, spelt out
    ("https://SCIM.Example/v2/Users?x=1", "https://scim.example/v2/Users?x=1"),  # hosts ignore case
    ("/other/path?startIndex=3", "https://scim.example/other/path?startIndex=3"),
    ("//scim.example/v2/x", "https://scim.example/v2/x"),
])
def test_same_origin_locations_are_followed(location: str, followed: str) -> None:
    """Locations on the same scheme, host and port (relative ones too) are followed as they are."""
    target = redirect_target("GET", HERE, 302, location, origin=URL("https://scim.example/v2"), hops=0,
                             where="GET /v2/Users", secrets=[])
    assert str(target) == followed


@pytest.mark.parametrize(("location", "shown"), [
    ("http://scim.example/v2/Users?token=abcd", "http://scim.example/v2/Users"),  # another scheme
    ("https://scim.example:8443/v2/Users", "https://scim.example:8443/v2/Users"),  # another port
    ("https://evil.example/v2/Users#frag", "https://evil.example/v2/Users"),  # another host
    ("https://user:hunter2@evil.example/login?next=%2F", "https://evil.example/login"),
    ("ftp://scim.example/v2/Users", "ftp://scim.example/v2/Users"),
])
def test_locations_elsewhere_are_refused_and_shown_without_query_or_user(location: str, shown: str) -> None:
    """Another scheme, host or port is refused; the message shows scheme://host:port/path only, with
    secrets redacted."""
    with pytest.raises(RedirectError) as caught:
        redirect_target("GET", HERE, 302, location, origin=URL("https://scim.example/v2"), hops=0,
                        where="GET /v2/Users", secrets=["hunter2", "abcd"])
    assert str(caught.value) == (f"GET /v2/Users answered 302: redirect to {shown} not followed "
                                 "(not the configured origin https://scim.example)")


@pytest.mark.parametrize(("method", "status", "followed"), [
    ("GET", 301, True), ("GET", 303, True), ("POST", 307, True), ("PATCH", 308, True),
    ("POST", 302, False), ("PATCH", 301, False), ("PUT", 303, False), ("DELETE", 302, False),
])
def test_only_307_and_308_are_followed_for_methods_other_than_get(method: str, status: int, followed: bool) -> None:
    """301/302/303 are followed for GET only; a write gets them refused, never turned into a GET."""
    def hop() -> URL:
        return redirect_target(method, HERE, status, "/v2/Users/", origin=HERE, hops=0, where=method, secrets=[])

    if followed:
        assert hop() == URL("https://scim.example/v2/Users/")
    else:
        with pytest.raises(RedirectError, match=f"would turn the {method} into a GET"):
            hop()
