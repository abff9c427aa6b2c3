"""What HttpTransport puts on the wire (headers made once per Authorization value, the body as encoded),
checked against a real aiohttp server on 127.0.0.1 that records every request it gets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from yarl import URL

from replicator.scim.auth import StaticAuth
from replicator.scim.retry import RetryPolicy
from replicator.scim.transport import HttpTransport

Seen = list[dict[str, Any]]


@contextlib.asynccontextmanager
async def serving(answer: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 answering every request with `answer`; yields its /v2 base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the port the OS chose
    try:
        yield f"http://127.0.0.1:{port}/v2"
    finally:
        await runner.cleanup()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, Seen]]:
    """A server answering 201 with a small resource to every request, keeping method, headers and body."""
    seen: Seen = []

    async def answer(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=201, body=b'{"id": "1"}', content_type="application/scim+json")

    async with serving(answer) as base:
        yield base, seen


class _RotatingToken:
    """A token that changes between requests (as an OAuth token does when it is refreshed)."""

    refreshable = False

    def __init__(self) -> None:
        self.calls = 0

    async def header(self, session: aiohttp.ClientSession) -> str | None:
        self.calls += 1
        return f"Bearer token-{self.calls}"

    def invalidate(self, header: str | None) -> None:
        pass

    def secrets(self) -> list[str]:
        return []


async def test_a_post_carries_the_encoded_body_its_content_type_and_the_authorization(recorder: tuple[str, Seen]) -> None:
    """A POST sends the body msgspec encoded, as application/scim+json, with the Authorization header."""
    base, seen = recorder
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ana", "active": True}
    async with HttpTransport(base, auth=StaticAuth.bearer("s3cret")) as transport:
        reply = await transport.request("POST", URL(base) / "Users", body=body)
    assert reply.status == 201
    (request,) = seen
    assert request["body"] == msgspec.json.encode(body)
    assert request["headers"]["Content-Type"] == "application/scim+json"
    assert request["headers"]["Content-Length"] == str(len(msgspec.json.encode(body)))
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["User-Agent"].startswith("scim-replicator/")


async def test_a_request_without_a_body_has_no_content_type_and_no_authorization_without_auth(
    recorder: tuple[str, Seen],
) -> None:
    """A GET or DELETE sends no Content-Type, and a side without credentials sends no Authorization."""
    base, seen = recorder
    async with HttpTransport(base) as transport:
        await transport.request("GET", URL(base) / "Users", params={"count": "1"})
        await transport.request("DELETE", URL(base) / "Users" / "1")
        await transport.request("PUT", URL(base) / "Users" / "1", body={"userName": "ana"})
    assert [r["method"] for r in seen] == ["GET", "DELETE", "PUT"]
    assert "Content-Type" not in seen[0]["headers"] and "Content-Type" not in seen[1]["headers"]
    assert seen[2]["headers"]["Content-Type"] == "application/scim+json"
    assert not any("Authorization" in r["headers"] for r in seen)


async def test_each_request_carries_the_authorization_of_its_moment(recorder: tuple[str, Seen]) -> None:
    """When the token changes between requests, every request sends the token current when it was sent
    (the headers made once are made again for a new value), with and without a body."""
    base, seen = recorder
    async with HttpTransport(base, auth=_RotatingToken(), retry=RetryPolicy(attempts=1)) as transport:
        await transport.request("POST", URL(base) / "Users", body={"userName": "a"})
        await transport.request("POST", URL(base) / "Users", body={"userName": "b"})
        await transport.request("GET", URL(base) / "Users")
        await transport.request("GET", URL(base) / "Users")
    assert [r["headers"]["Authorization"] for r in seen] == [f"Bearer token-{n}" for n in (1, 2, 3, 4)]
    assert [r["headers"].get("Content-Type") for r in seen] == ["application/scim+json"] * 2 + [None] * 2


async def test_the_platform_api_content_type_is_sent_as_configured(recorder: tuple[str, Seen]) -> None:
    """A transport made for another body type (PingOne's application/json) sends that type."""
    base, seen = recorder
    async with HttpTransport(base, content_type="application/json") as transport:
        await transport.request("PATCH", URL(base) / "Users" / "1", body={"title": "x"})
    assert seen[0]["headers"]["Content-Type"] == "application/json"


@pytest.fixture
async def large_answers() -> AsyncIterator[tuple[str, list[tuple[str, Any]]]]:
    """A server answering PATCH /ok with a 2 MB resource and PATCH /bad with a 400, keeping the
    (path, client port) of every request: one port for all of them is one kept-alive connection."""
    seen: list[tuple[str, Any]] = []
    big = msgspec.json.encode({"id": "g", "members": [{"value": f"u{i:07d}", "type": "User"} for i in range(60_000)]})

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        seen.append((request.path, request.transport.get_extra_info("peername")[1]))
        if request.path.endswith("/bad"):
            return web.Response(status=400, body=b'{"scimType": "invalidValue", "detail": "no such member"}',
                                content_type="application/scim+json")
        return web.Response(status=200, body=big, content_type="application/scim+json")

    async with serving(answer) as base:
        yield base, seen


async def test_an_answer_not_kept_is_read_to_its_end_and_let_go(large_answers: tuple[str, list[tuple[str, Any]]]) -> None:
    """`keep_body=False`: a 2xx answer's megabytes are read (the connection is kept for the next request)
    but not returned; an error answer is still read, and its words raised."""
    base, seen = large_answers
    async with HttpTransport(base, max_connections=1, retry=RetryPolicy(attempts=1)) as transport:
        kept = await transport.request("PATCH", URL(base) / "ok", body={"Operations": []})
        let_go = await transport.request("PATCH", URL(base) / "ok", body={"Operations": []}, keep_body=False)
        again = await transport.request("PATCH", URL(base) / "ok", body={"Operations": []}, keep_body=False)
        with pytest.raises(Exception, match="no such member"):
            await transport.request("PATCH", URL(base) / "bad", body={"Operations": []}, keep_body=False)
    assert len(kept.body) > 1_000_000 and (let_go.status, let_go.body, again.body) == (200, b"", b"")
    assert [path for path, _ in seen] == ["/v2/ok", "/v2/ok", "/v2/ok", "/v2/bad"]
    assert len({port for _, port in seen}) == 1, seen  # one connection: each answer was read to its end
