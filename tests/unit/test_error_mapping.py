"""Every aiohttp failure maps to exactly one error of ours, with the retryability replicator.errors documents.

`status.transport_error` is the one translation; the client hands it whatever aiohttp (or a timeout)
raises around an exchange. Checked twice: the pure mapping, and through a ScimClient whose session
raises the exception (aioresponses), where the retry layer must retry exactly what the mapping allows.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from replicator.errors import CertificateError, ReplicatorError, ScimTimeoutError, TLSError, TransportError
from replicator.scim.client import ScimClient
from replicator.scim.retry import RetryPolicy, retry_verdict
from replicator.scim.status import FOREIGN_ERRORS, transport_error

BASE = "https://scim.example/v2"
USERS = f"{BASE}/Users"
ONE_USER = f"{USERS}/u-1"
_KEY: Any = SimpleNamespace(host="scim.example", port=443, is_ssl=True, ssl=True, proxy=None,
                            proxy_auth=None, proxy_headers_hash=None, server_hostname=None)
_REQUEST = aiohttp.RequestInfo(URL(ONE_USER), "GET", CIMultiDictProxy(CIMultiDict()), URL(ONE_USER))


def _response_error(cls: type[aiohttp.ClientResponseError]) -> Callable[[], BaseException]:
    return lambda: cls(_REQUEST, (), status=502, message="bad")


# aiohttp exception name -> (how to build one, our error class, whether the request may have been sent)
MAPPING: dict[str, tuple[Callable[[], BaseException], type[TransportError], bool]] = {
    # no answer in time: the server may have acted
    "ServerTimeoutError": (lambda: aiohttp.ServerTimeoutError("read timeout"), ScimTimeoutError, True),
    "ConnectionTimeoutError": (lambda: aiohttp.ConnectionTimeoutError("connect timeout"), ScimTimeoutError, True),
    "SocketTimeoutError": (lambda: aiohttp.SocketTimeoutError("socket timeout"), ScimTimeoutError, True),
    # TLS: terminal, and nothing was sent
    "ClientSSLError": (lambda: aiohttp.ClientSSLError(_KEY, ssl.SSLError(1, "handshake")), TLSError, False),
    "ClientConnectorSSLError": (lambda: aiohttp.ClientConnectorSSLError(_KEY, ssl.SSLError(1, "handshake")),
                                TLSError, False),
    # a certificate refused: every request there fails alike (a CertificateError stops the cycle)
    "ClientConnectorCertificateError": (
        lambda: aiohttp.ClientConnectorCertificateError(_KEY, ssl.SSLCertVerificationError(1, "self-signed")),
        CertificateError, False),
    # the connection was never made
    "ClientConnectorError": (lambda: aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
                             TransportError, False),
    "ClientConnectorDNSError": (lambda: aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "no such host")),
                                TransportError, False),
    "ClientProxyConnectionError": (lambda: aiohttp.ClientProxyConnectionError(_KEY, OSError(111, "refused")),
                                   TransportError, False),
    # an invalid URL (never seen in practice: redirect_target vets every Location first)
    "InvalidURL": (lambda: aiohttp.InvalidURL("http://[::1"), TransportError, True),
    "InvalidUrlClientError": (lambda: aiohttp.InvalidUrlClientError("http://[::1"), TransportError, True),
    "InvalidUrlRedirectClientError": (lambda: aiohttp.InvalidUrlRedirectClientError("http://[::1"),
                                      TransportError, True),
    # the connection broke once the request may have gone out, or the answer could not be read
    "ServerDisconnectedError": (lambda: aiohttp.ServerDisconnectedError(), TransportError, True),
    "ClientOSError": (lambda: aiohttp.ClientOSError(104, "connection reset"), TransportError, True),
    "ClientConnectionResetError": (lambda: aiohttp.ClientConnectionResetError("reset"), TransportError, True),
    "ClientPayloadError": (lambda: aiohttp.ClientPayloadError("truncated body"), TransportError, True),
    "ServerFingerprintMismatch": (lambda: aiohttp.ServerFingerprintMismatch(b"a", b"b", "scim.example", 443),
                                  TransportError, True),
    "ServerConnectionError": (lambda: aiohttp.ServerConnectionError("closed"), TransportError, True),
    "ClientConnectionError": (lambda: aiohttp.ClientConnectionError("closed"), TransportError, True),
    "UploadAbortedError": (lambda: aiohttp.UploadAbortedError("upload aborted"), TransportError, True),
    "NonHttpUrlClientError": (lambda: aiohttp.NonHttpUrlClientError("ftp://scim.example"), TransportError, True),
    "NonHttpUrlRedirectClientError": (lambda: aiohttp.NonHttpUrlRedirectClientError("ftp://scim.example"),
                                      TransportError, True),
    "RedirectClientError": (lambda: aiohttp.RedirectClientError("redirect"), TransportError, True),
    # raised by aiohttp features the client does not use (redirect following, .json(), proxies,
    # websockets, raise_for_status): mapped all the same should one ever surface
    "TooManyRedirects": (_response_error(aiohttp.TooManyRedirects), TransportError, True),
    "ContentTypeError": (_response_error(aiohttp.ContentTypeError), TransportError, True),
    "ClientResponseError": (_response_error(aiohttp.ClientResponseError), TransportError, True),
    "ClientHttpProxyError": (_response_error(aiohttp.ClientHttpProxyError), TransportError, True),
    "WSServerHandshakeError": (_response_error(aiohttp.WSServerHandshakeError), TransportError, True),
    "ClientError": (lambda: aiohttp.ClientError("anything else"), TransportError, True),
}
CASES: dict[str, tuple[Callable[[], BaseException], type[TransportError], bool]] = {
    # asyncio.TimeoutError is the built-in TimeoutError since Python 3.11: what a ClientTimeout raises
    "TimeoutError": (lambda: TimeoutError(), ScimTimeoutError, True),
    **{name: case for name, case in MAPPING.items() if hasattr(aiohttp, name)},  # older aiohttp has fewer
}


def test_every_aiohttp_client_error_is_in_the_table() -> None:
    """A ClientError class aiohttp exports and the table does not name fails here: decide how it maps."""
    exported = {name for name in dir(aiohttp)
                if isinstance(getattr(aiohttp, name), type) and issubclass(getattr(aiohttp, name), aiohttp.ClientError)}
    assert exported - set(MAPPING) == set()


@pytest.mark.parametrize("name", sorted(CASES))
def test_aiohttp_error_maps_to_exactly_one_of_ours(name: str) -> None:
    """transport_error gives exactly the expected class of ours, with `sent` and `retryable` as documented."""
    build, expected, sent = CASES[name]
    foreign = build()
    assert isinstance(foreign, FOREIGN_ERRORS), "the client would not catch it"
    error = transport_error(foreign, "GET", URL(ONE_USER), "source")
    assert type(error) is expected
    assert isinstance(error, ReplicatorError)
    assert error.sent is sent
    assert error.retryable is not issubclass(expected, TLSError)  # TLS is terminal; timeouts and the rest are not
    assert str(error).startswith("GET") and "source" in str(error)


@pytest.mark.parametrize("name", sorted(CASES))
def test_retry_verdict_follows_the_mapping(name: str) -> None:
    """Idempotent calls retry every retryable transport error; a POST only one whose request was never sent."""
    build, expected, sent = CASES[name]
    error = transport_error(build(), "POST", URL(USERS), "destination")
    retryable = not issubclass(expected, TLSError)
    assert retry_verdict(error, idempotent=True) is retryable
    assert retry_verdict(error, idempotent=False) is (retryable and not sent)


class _Response(ClientResponse):
    """aioresponses 0.7.9 builds responses without the `stream_writer` that aiohttp >= 3.13 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_client_raises_our_error_and_retries_what_the_mapping_allows(
    mocked: aioresponses, name: str, method: str
) -> None:
    """Through the client: the aiohttp error is raised as ours (chained), or retried once and the retry answers."""
    build, expected, sent = CASES[name]
    foreign = build()
    url = ONE_USER if method == "GET" else USERS
    mocked.add(url, method, exception=foreign)
    mocked.add(url, method, status=201 if method == "POST" else 200, body='{"id": "u-1", "userName": "a"}',
               content_type="application/scim+json", response_class=_Response)
    retried = not issubclass(expected, TLSError) and (method == "GET" or not sent)
    policy = RetryPolicy(attempts=2, wait_initial=0.001, wait_max=0.001)
    async with ScimClient(BASE, name="source", retry=policy) as client:
        if retried:
            answer = await (client.get("User", "u-1") if method == "GET" else client.create("User", {"userName": "a"}))
            assert answer["id"] == "u-1"
        else:
            with pytest.raises(TransportError) as info:
                await (client.get("User", "u-1") if method == "GET" else client.create("User", {"userName": "a"}))
            assert type(info.value) is expected
            assert info.value.__cause__ is foreign
        assert client.requests[method] == (2 if retried else 1)
        assert client.stats["retries"] == (1 if retried else 0)
        assert client.stats["timeouts"] == (1 if expected is ScimTimeoutError else 0)
