"""Authentication for SCIM calls: none, static bearer token, HTTP basic, OAuth2 client credentials.

Each scheme gives the `Authorization` header for a request. OAuth2 tokens are cached, refreshed shortly
before they expire, and refreshed once more when the server answers 401 (`invalidate`). Secrets are
never put into exception messages or logs: each scheme names its secrets (`secrets()`), and words a
server sends back (an error detail that echoes a header or a posted form) pass through `redact`.

A token request that fails says so as the probe's diagnosis does (`diagnosis.token_*_message`: the
side, the URL, the cause in words, the setting to check); one that cannot connect before the first
token is not retried.

Where our credentials go is decided here too: `redirect_target` is the rule the token request and the
SCIM client both follow (a redirect is followed only within the configured origin).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from replicator.errors import AuthError, CertificateError, RedirectError, TLSError, TransportError
from replicator.pipeline.urls import shown_url
from replicator.scim.diagnosis import (
    TokenEndpoint,
    setting_name,
    token_refused_message,
    token_tls_message,
    token_unreachable_message,
    token_unusable_message,
)
from replicator.scim.status import connect_failure_words, redact, tls_failure_words

if TYPE_CHECKING:
    from replicator.config import SideConfig


class Auth(Protocol):
    """What the client needs from an authentication scheme."""

    refreshable: bool

    async def header(self, session: aiohttp.ClientSession) -> str | None: ...

    def invalidate(self, header: str | None) -> None: ...

    def secrets(self) -> list[str]: ...


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5  # redirects followed for one request; one more is an error (a loop, most likely)


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme.lower(), (url.host or "").lower(), url.port


def redirect_target(method: str, url: URL, status: int, location: str | None, *, origin: URL, hops: int,
                    where: str, secrets: Iterable[str]) -> URL:
    """The URL to ask next, with the same method (and body), after `url` answered a redirect `status`
    with `location`, `hops` redirects having been followed before. Pure; raises RedirectError for a redirect
    we do not follow: none is followed to another scheme, host or port than `origin`'s, past
    MAX_REDIRECTS, or by turning a non-GET into a GET (301/302/303 are followed for GET only).
    `where` starts the message (say "GET /v2/Users on source")."""
    if location is None or not location.strip():
        raise RedirectError(redact(f"{where} answered {status} without a Location: not followed", secrets))
    try:
        target = url.join(URL(location.strip()))
        same_origin = target.absolute and bool(target.host) and _origin(target) == _origin(origin)
    except ValueError as exc:
        raise RedirectError(redact(f"{where} answered {status} with a Location that is not a URL", secrets)) from exc
    shown = shown_url(target)
    if not same_origin:
        raise RedirectError(redact(f"{where} answered {status}: redirect to {shown} not followed (not the "
                                   f"configured origin {shown_url(origin.with_path(''))})", secrets))
    if hops >= MAX_REDIRECTS:
        raise RedirectError(redact(f"{where} answered {status}: redirect to {shown} not followed (more than "
                                   f"{MAX_REDIRECTS} redirects, a loop?)", secrets))
    if status in (301, 302, 303) and method != "GET":
        raise RedirectError(redact(f"{where} answered {status}: redirect to {shown} not followed (it would turn "
                                   f"the {method} into a GET; only 307 and 308 keep it)", secrets))
    return target


class NoAuth:
    refreshable = False

    async def header(self, session: aiohttp.ClientSession) -> str | None:
        return None

    def invalidate(self, header: str | None) -> None:
        pass

    def secrets(self) -> list[str]:
        return []


class StaticAuth:
    """A fixed header value: `Bearer <token>` or `Basic <user:password>`."""

    refreshable = False

    def __init__(self, value: str, secrets: tuple[str, ...] = ()) -> None:
        self._value = value
        self._secrets = [value.partition(" ")[2], *secrets]

    @classmethod
    def bearer(cls, token: str) -> StaticAuth:
        return cls(f"Bearer {token}")

    @classmethod
    def basic(cls, username: str, password: str) -> StaticAuth:
        return cls(_basic(username, password), (password,))

    async def header(self, session: aiohttp.ClientSession) -> str | None:
        return self._value

    def invalidate(self, header: str | None) -> None:
        pass

    def secrets(self) -> list[str]:
        return self._secrets

    def __repr__(self) -> str:
        return "StaticAuth(***)"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class TokenEndpointUnreachable(TransportError):
    """The token endpoint gave no answer; the message names the side, the URL and the settings to check.
    Retried only once a token was got there: before that (at discovery, a run's first request), a
    wrong token URL is said at once, not after a minute of retries."""

    def __init__(self, message: str, *, sent: bool, retryable: bool) -> None:
        super().__init__(message, sent=sent)
        self.retryable = retryable


class TokenEndpointTLSError(TLSError):
    """TLS with the token endpoint failed; the message names the side, the URL and what to set."""


class TokenEndpointCertificateError(TokenEndpointTLSError, CertificateError):
    """The token endpoint's certificate was refused (not trusted, or for another host): every token
    request fails alike, so, met in the middle of a cycle (a refresh), it stops the cycle."""


class _TokenResponse(msgspec.Struct):
    access_token: str
    expires_in: float = 3600.0
    token_type: str = "Bearer"


class ClientCredentials:
    """OAuth2 client credentials grant (RFC 6749 4.4), e.g. a PingOne worker application."""

    refreshable = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        method: str = "client_secret_basic",
        scope: str | None = None,
        timeout: float = 30.0,
        side: str = "",
        derived_from: tuple[str, ...] = (),
    ) -> None:
        self._token_url = token_url
        self._endpoint = TokenEndpoint(side, shown_url(URL(token_url)), derived_from, method)
        self._client_id = client_id
        self._client_secret = client_secret
        self._method = method
        self._scope = scope
        self._timeout = timeout
        self._header: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self._token_url!r}, client_id={self._client_id!r})"

    async def header(self, session: aiohttp.ClientSession) -> str | None:
        if self._header is not None and time.monotonic() < self._expires_at:
            return self._header
        async with self._lock:
            if self._header is None or time.monotonic() >= self._expires_at:
                await self._fetch(session)
        return self._header

    def invalidate(self, header: str | None) -> None:
        """Forget the token the server refused (unless another task already replaced it)."""
        if header is not None and header == self._header:
            self._header = None

    def secrets(self) -> list[str]:
        basic = _basic(quote(self._client_id, safe=""), quote(self._client_secret, safe="")).partition(" ")[2]
        return [self._client_secret, basic] + ([self._header.partition(" ")[2]] if self._header else [])

    async def _fetch(self, session: aiohttp.ClientSession) -> None:
        data: dict[str, Any] = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        headers = {"Accept": "application/json"}
        if self._method == "client_secret_post":
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        else:
            # RFC 6749 2.3.1: both parts are form-urlencoded before HTTP basic
            headers["Authorization"] = _basic(quote(self._client_id, safe=""), quote(self._client_secret, safe=""))
        configured = url = URL(self._token_url)
        try:
            for hops in range(MAX_REDIRECTS + 1):
                async with session.post(
                    url,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._timeout),
                    allow_redirects=False,  # aiohttp would follow to any origin, and a POST as a GET
                ) as response:
                    body = await response.read()
                    status = response.status
                    location = response.headers.get("Location")
                if status not in REDIRECT_STATUSES:
                    break
                url = redirect_target("POST", url, status, location, origin=configured, hops=hops,
                                      where=f"token endpoint {shown_url(url)}", secrets=self.secrets())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._no_answer(exc) from exc
        if status != 200:
            raise AuthError(token_refused_message(self._endpoint, status, *_oauth_error(body, self.secrets())))
        try:
            token = msgspec.json.decode(body, type=_TokenResponse)
        except msgspec.DecodeError as exc:
            raise AuthError(token_unusable_message(self._endpoint)) from exc
        self.fetches += 1
        lifetime = max(token.expires_in, 1.0)
        self._expires_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)
        self._header = f"Bearer {token.access_token}"

    def _no_answer(self, exc: TimeoutError | aiohttp.ClientError) -> TransportError:
        """Our error for a token request that got no answer: TLS refused, no connection, no answer in time."""
        if isinstance(exc, aiohttp.ClientSSLError):
            words, certificate = tls_failure_words(exc)
            refused = TokenEndpointCertificateError if certificate else TokenEndpointTLSError
            return refused(token_tls_message(self._endpoint, words, certificate), sent=False)
        got_one_before = self.fetches > 0
        if isinstance(exc, aiohttp.ClientConnectorError):
            words, sent = f"cannot connect to {exc.host}:{exc.port}: {connect_failure_words(exc)}", False
        elif isinstance(exc, TimeoutError):
            words, sent = f"no answer within {self._timeout:g} s", True
        else:
            words, sent = f"the connection failed ({type(exc).__name__})", True
        return TokenEndpointUnreachable(token_unreachable_message(self._endpoint, words), sent=sent,
                                        retryable=got_one_before or sent)


def _oauth_error(body: bytes, secrets: list[str]) -> tuple[str, str]:
    """The `error` and `error_description` of an OAuth2 error answer (RFC 6749 5.2), redacted, cut short."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "", ""
    if not isinstance(decoded, dict):
        return "", ""
    error, description = (redact(str(decoded.get(k) or ""), secrets)[:200] for k in ("error", "error_description"))
    return error, description


def token_url_derived_from(cfg: SideConfig, side: str) -> tuple[str, ...]:
    """The settings a side's token URL was derived from by the PingOne preset (`replicator.config.
    pingone_urls`): () when `token_url` names it (or no preset applied)."""
    env = cfg.pingone_environment
    if not env or not cfg.auth_url or cfg.token_url != f"{cfg.auth_url}/{env}/as/token":
        return ()
    by_region = cfg.auth_url == f"https://auth.pingone.{cfg.pingone_region or 'com'}"  # auth_url's default
    return setting_name(side, "pingone_region" if by_region else "auth_url"), setting_name(side, "pingone_environment")


def auth_for(cfg: SideConfig, side: str = "") -> Auth:
    """The authentication scheme a side's configuration asks for (`side` names it in messages)."""
    mode = cfg.auth_mode
    if mode == "bearer" and cfg.token:
        return StaticAuth.bearer(cfg.token)
    if mode == "basic" and cfg.username:
        return StaticAuth.basic(cfg.username, cfg.password or "")
    if mode == "oauth" and cfg.token_url and cfg.client_id and cfg.client_secret:
        return ClientCredentials(
            cfg.token_url, cfg.client_id, cfg.client_secret,
            method=cfg.token_auth_method, scope=cfg.scope, timeout=cfg.timeout,
            side=side, derived_from=token_url_derived_from(cfg, side),
        )
    return NoAuth()
