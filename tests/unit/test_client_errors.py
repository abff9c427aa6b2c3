"""Tests for the SCIM client's error mapping, Retry-After parsing and paging (replicator.scim.client).

aioresponses stands in for the server: it is right for decoding and status mapping, not for HTTP details.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientResponse
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from replicator.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionError,
    ProtocolError,
    RateLimitedError,
    RequestTimeoutError,
    ScimStatusError,
    ServerError,
    UnexpectedStatusError,
)
from replicator.scim.auth import StaticAuth
from replicator.scim.client import ScimClient
from replicator.scim.paging import ReadReport
from replicator.scim.retry import RetryPolicy, parse_retry_after

# status mapping is checked one answer at a time: the retry layer has its own tests
NO_RETRY = RetryPolicy(attempts=1)

BASE = "https://scim.example/v2"
ONE_USER = f"{BASE}/Users/u-1"
USERS_QUERY = re.compile(r"^https://scim\.example/v2/Users\?.*$")
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
async def client() -> AsyncIterator[ScimClient]:
    async with ScimClient(BASE, name="test-server", retry=NO_RETRY) as opened:
        yield opened


class _Response(ClientResponse):
    """aioresponses 0.7.9 builds responses without the `stream_writer` that aiohttp >= 3.13 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _Mock(aioresponses):
    """aioresponses whose canned answers use the compatible response class."""

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", _Response)
        super().add(url, method, **kwargs)


def reply(status: int, body: str) -> CallbackResult:
    return CallbackResult(status=status, body=body, response_class=_Response)


@pytest.fixture
def mocked() -> Iterator[_Mock]:
    with _Mock() as mock:
        yield mock


def scim_error(status: int, scim_type: str | None = None, detail: str | None = None) -> str:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status)}
    if scim_type is not None:
        body["scimType"] = scim_type
    if detail is not None:
        body["detail"] = detail
    return json.dumps(body)


# -- status mapping -----------------------------------------------------------------------------

STATUS_CASES = [
    (400, BadRequestError, False),
    (404, NotFoundError, False),
    (409, ConflictError, False),
    (412, PreconditionError, False),
    (413, PayloadTooLargeError, False),
    (408, RequestTimeoutError, True),
    (429, RateLimitedError, True),
    (500, ServerError, True),
    (503, ServerError, True),
    (501, ServerError, False),
    (418, UnexpectedStatusError, False),
]


@pytest.mark.parametrize(("status", "error_class", "retryable"), STATUS_CASES)
async def test_status_maps_to_error_class(
    client: ScimClient, mocked: Any, status: int, error_class: type[ScimStatusError], retryable: bool
) -> None:
    """Each non-2xx status raises its error class, keeping status, scimType, detail; retryable as documented."""
    mocked.get(ONE_USER, status=status, body=scim_error(status, "uniqueness", f"detail for {status}"))
    with pytest.raises(ScimStatusError) as info:
        await client.get("User", "u-1")
    error = info.value
    assert type(error) is error_class
    assert error.status == status
    assert error.scim_type == "uniqueness"
    assert error.detail == f"detail for {status}"
    assert error.retryable is retryable
    assert str(status) in str(error)
    assert f"detail for {status}" in str(error)
    assert "/v2/Users/u-1" in str(error)


async def test_error_without_scim_body_keeps_status(client: ScimClient, mocked: Any) -> None:
    """A non-JSON error body still gives the typed error with its status and no scimType/detail."""
    mocked.get(ONE_USER, status=502, body="<html>Bad gateway</html>", content_type="text/html")
    with pytest.raises(ServerError) as info:
        await client.get("User", "u-1")
    assert info.value.status == 502
    assert info.value.scim_type is None
    assert info.value.detail is None
    assert info.value.retryable is True


async def test_rate_limited_error_carries_retry_after(client: ScimClient, mocked: Any) -> None:
    """A 429 with Retry-After in seconds keeps the delay on the error."""
    mocked.get(ONE_USER, status=429, body=scim_error(429, detail="slow down"), headers={"Retry-After": "7"})
    with pytest.raises(RateLimitedError) as info:
        await client.get("User", "u-1")
    assert info.value.retry_after == 7.0
    assert info.value.retryable


async def test_non_json_error_body_does_not_turn_into_protocol_error(client: ScimClient, mocked: Any) -> None:
    """A 409 whose body is not JSON is still a ConflictError."""
    mocked.post(f"{BASE}/Users", status=409, body="conflict!", content_type="text/plain")
    with pytest.raises(ConflictError) as info:
        await client.create("User", {"userName": "a"})
    assert info.value.status == 409


# -- Retry-After --------------------------------------------------------------------------------


def test_parse_retry_after_seconds() -> None:
    """Retry-After as delta-seconds is read as that many seconds; negatives clamp to zero."""
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("-5") == 0.0


def test_parse_retry_after_http_date() -> None:
    """Retry-After as an HTTP date gives the seconds until then; a past date gives zero."""
    future = email.utils.formatdate(time.time() + 90, usegmt=True)
    delay = parse_retry_after(future)
    assert delay is not None
    assert 85.0 <= delay <= 91.0
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_parse_retry_after_absent_or_garbage() -> None:
    """No header or an unparseable one gives None."""
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None


# -- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_static_token_raises_auth_error_without_the_token(mocked: Any, status: int) -> None:
    """A 401/403 with a static bearer token raises AuthError once; the message never contains the token."""
    token = "super-secret-token-XYZ"
    mocked.get(ONE_USER, status=status, body=scim_error(status, detail=f"bad token {token}"), repeat=True)
    async with ScimClient(BASE, auth=StaticAuth.bearer(token), name="dest", retry=NO_RETRY) as client:
        with pytest.raises(AuthError) as info:
            await client.get("User", "u-1")
        assert client.requests["GET"] == 1  # a static token is not retried
    assert token not in str(info.value)
    assert token not in repr(info.value)
    assert str(status) in str(info.value)


async def test_bearer_token_is_sent(mocked: Any) -> None:
    """The static bearer token is sent in the Authorization header."""
    mocked.get(ONE_USER, status=200, body=json.dumps({"id": "u-1", "userName": "a"}))
    async with ScimClient(BASE, auth=StaticAuth.bearer("tok"), name="dest", retry=NO_RETRY) as client:
        assert (await client.get("User", "u-1"))["userName"] == "a"
    ((_, _url), calls) = next(iter(mocked.requests.items()))
    assert calls[0].kwargs["headers"]["Authorization"] == "Bearer tok"


# -- decoding -----------------------------------------------------------------------------------


async def test_invalid_json_on_get_raises_protocol_error(client: ScimClient, mocked: Any) -> None:
    """A 200 answer whose body is not JSON is a ProtocolError."""
    mocked.get(ONE_USER, status=200, body="{not json", content_type="application/scim+json")
    with pytest.raises(ProtocolError):
        await client.get("User", "u-1")


async def test_resource_without_id_raises_protocol_error(client: ScimClient, mocked: Any) -> None:
    """A 200 answer that is JSON but has no resource id is a ProtocolError."""
    mocked.get(ONE_USER, status=200, body=json.dumps({"userName": "a"}))
    with pytest.raises(ProtocolError):
        await client.get("User", "u-1")


async def test_get_returns_decoded_resource(client: ScimClient, mocked: Any) -> None:
    """A good answer is decoded into a dict."""
    mocked.get(ONE_USER, status=200, body=json.dumps({"id": "u-1", "userName": "ünï"}))
    assert await client.get("User", "u-1") == {"id": "u-1", "userName": "ünï"}


# -- paging -------------------------------------------------------------------------------------


def _user(i: int | str) -> dict[str, Any]:
    return {"id": f"u{i}", "userName": f"user{i}"}


def _list_response(resources: list[dict[str, Any]], total: int | None) -> str:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "Resources": resources,
        "itemsPerPage": len(resources),
    }
    if total is not None:
        body["totalResults"] = total
    return json.dumps(body)


def _params(url: URL) -> tuple[int, int]:
    return int(url.query["startIndex"]), int(url.query["count"])


async def _read_all(client: ScimClient, report: ReadReport, page_size: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for page in client.iter_pages("User", report, page_size=page_size, cursor=False):
        out.extend(page)
    return out


async def test_capped_pages_advance_by_number_returned(client: ScimClient, mocked: Any) -> None:
    """A server returning 2 items when 5 are asked is read completely, advancing by 2 each page."""
    users = [_user(i) for i in range(1, 6)]
    asked: list[tuple[int, int]] = []

    def serve(url: URL, **_: Any) -> CallbackResult:
        start, count = _params(url)
        asked.append((start, count))
        page = users[start - 1 : start - 1 + min(count, 2)]
        return reply(200, _list_response(page, len(users)))

    mocked.get(USERS_QUERY, callback=serve, repeat=True)
    report = ReadReport(kind="User")
    got = await _read_all(client, report, page_size=5)
    assert [u["id"] for u in got] == [u["id"] for u in users]
    assert asked == [(1, 5), (3, 5), (5, 5)]
    assert report.seen == 5
    assert report.pages == 3
    assert report.duplicates == 0
    assert report.total_results == 5
    assert report.finished
    assert report.complete


async def test_duplicates_across_pages_are_removed_and_counted(client: ScimClient, mocked: Any) -> None:
    """An id seen on an earlier page is not yielded again and is counted as a duplicate."""
    pages = {1: [_user(1), _user(2)], 3: [_user(2), _user(3)], 5: [_user(4)], 6: []}

    def serve(url: URL, **_: Any) -> CallbackResult:
        start, _count = _params(url)
        return reply(200, _list_response(pages[start], None))

    mocked.get(USERS_QUERY, callback=serve, repeat=True)
    report = ReadReport(kind="User")
    got = await _read_all(client, report, page_size=2)
    assert [u["id"] for u in got] == ["u1", "u2", "u3", "u4"]
    assert report.duplicates == 1
    assert report.seen == 4
    assert report.complete


async def test_page_error_marks_read_incomplete(client: ScimClient, mocked: Any) -> None:
    """A failing page raises its typed error and leaves the report incomplete with the problem noted."""

    def serve(url: URL, **_: Any) -> CallbackResult:
        start, _count = _params(url)
        if start == 1:
            return reply(200, _list_response([_user(1), _user(2)], 4))
        return reply(503, scim_error(503, detail="busy"))

    mocked.get(USERS_QUERY, callback=serve, repeat=True)
    report = ReadReport(kind="User")
    got: list[dict[str, Any]] = []
    with pytest.raises(ServerError):
        async for page in client.iter_pages("User", report, page_size=2, cursor=False):
            got.extend(page)
    assert [u["id"] for u in got] == ["u1", "u2"]
    assert report.problems
    assert not report.finished
    assert not report.complete


async def test_invalid_json_page_marks_read_incomplete(client: ScimClient, mocked: Any) -> None:
    """A page that is not JSON raises ProtocolError and leaves the report incomplete."""
    mocked.get(USERS_QUERY, status=200, body="[[[", repeat=True)
    report = ReadReport(kind="User")
    with pytest.raises(ProtocolError):
        await _read_all(client, report, page_size=2)
    assert report.problems
    assert not report.complete


async def test_short_read_is_not_complete(client: ScimClient, mocked: Any) -> None:
    """A listing that ends before totalResults is reached is not complete."""

    def serve(url: URL, **_: Any) -> CallbackResult:
        start, _count = _params(url)
        page = [_user(1), _user(2)] if start == 1 else []
        return reply(200, _list_response(page, 5))

    mocked.get(USERS_QUERY, callback=serve, repeat=True)
    report = ReadReport(kind="User")
    got = await _read_all(client, report, page_size=2)
    assert len(got) == 2
    assert report.finished
    assert not report.complete


async def test_server_ignoring_start_index_stops_and_is_incomplete(client: ScimClient, mocked: Any) -> None:
    """A server that always sends the first page ends the read (no endless loop) and marks it incomplete."""
    mocked.get(USERS_QUERY, status=200, body=_list_response([_user(1), _user(2)], 6), repeat=True)
    report = ReadReport(kind="User")
    got = await _read_all(client, report, page_size=2)
    assert [u["id"] for u in got] == ["u1", "u2"]
    assert report.pages == 2
    assert report.duplicates == 2
    assert report.problems
    assert not report.complete


async def test_cursor_paging_follows_next_cursor(client: ScimClient, mocked: Any) -> None:
    """In cursor mode the client follows nextCursor until it is absent, and reads everything."""
    asked: list[str] = []
    pages = {"": ([_user(1), _user(2)], "c2"), "c2": ([_user(3)], None)}

    def serve(url: URL, **_: Any) -> CallbackResult:
        cursor = url.query["cursor"]
        asked.append(cursor)
        resources, following = pages[cursor]
        body = json.loads(_list_response(resources, 3))
        if following:
            body["nextCursor"] = following
        return reply(200, json.dumps(body))

    mocked.get(USERS_QUERY, callback=serve, repeat=True)
    report = ReadReport(kind="User")
    got: list[dict[str, Any]] = []
    async for page in client.iter_pages("User", report, page_size=2, cursor=True):
        got.extend(page)
    assert [u["id"] for u in got] == ["u1", "u2", "u3"]
    assert asked == ["", "c2"]
    assert report.complete


def test_a_platform_api_error_body_gives_its_code_and_words() -> None:
    """PingOne's Platform errors ({id, code, message, details}) are read by the same decoder as SCIM's:
    the code (a uniqueness violation in a 400's details counts as one) and a one-line detail."""
    from replicator.scim.wire import decode_error

    body = (b'{"id": "c1", "code": "INVALID_DATA", "message": "bad request", "details": '
            b'[{"code": "UNIQUENESS_VIOLATION", "target": "username", "message": "is taken"}]}')
    words = decode_error(body)
    assert (words.scimType, words.detail) == ("UNIQUENESS_VIOLATION", "bad request username: is taken")
    assert decode_error(b'{"scimType": "uniqueness", "detail": "d"}').scimType == "uniqueness"
