"""Authentication for SCIM calls: none, static bearer token, HTTP basic, OAuth2 client credentials.

Each scheme gives the `Authorization` header for a request. OAuth2 tokens are cached, refreshed shortly
before they expire, and refreshed once more when the server answers 401 (`invalidate`). Secrets are
never put into exception messages or logs: each scheme names its secrets (`secrets()`), and words a
server sends back (an error detail that echoes a header or a posted form) pass through `redact`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterable
from urllib.parse import quote, quote_plus
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import msgspec

from replicator.errors import AuthError, TransportError

if TYPE_CHECKING:
    from replicator.config import SideConfig


class Auth(Protocol):
    """What the client needs from an authentication scheme."""

    refreshable: bool

    async def header(self, session: aiohttp.ClientSession) -> str | None: ...

    def invalidate(self, header: str | None) -> None: ...

    def secrets(self) -> list[str]: ...


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and its URL-encoded forms) replaced by ***."""
    for secret in secrets:
        if len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
    return text


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
    ) -> None:
        self._token_url = token_url
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
        try:
            async with session.post(
                self._token_url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransportError(
                f"token endpoint {self._token_url} unreachable: {type(exc).__name__}"
            ) from exc
        if status != 200:
            reason = _oauth_error(body, self.secrets())
            raise AuthError(f"token endpoint {self._token_url} answered {status}{reason}")
        try:
            token = msgspec.json.decode(body, type=_TokenResponse)
        except msgspec.DecodeError as exc:
            raise AuthError(f"token endpoint {self._token_url} sent no usable access_token") from exc
        self.fetches += 1
        lifetime = max(token.expires_in, 1.0)
        self._expires_at = time.monotonic() + lifetime - min(60.0, lifetime / 10)
        self._header = f"Bearer {token.access_token}"


def _oauth_error(body: bytes, secrets: list[str]) -> str:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return ""
    if not isinstance(decoded, dict):
        return ""
    parts = [redact(str(decoded[k]), secrets)[:200] for k in ("error", "error_description") if decoded.get(k)]
    return (": " + " - ".join(parts)) if parts else ""


def auth_for(cfg: "SideConfig") -> Auth:
    """The authentication scheme a side's configuration asks for."""
    mode = cfg.auth_mode
    if mode == "bearer" and cfg.token:
        return StaticAuth.bearer(cfg.token)
    if mode == "basic" and cfg.username:
        return StaticAuth.basic(cfg.username, cfg.password or "")
    if mode == "oauth" and cfg.token_url and cfg.client_id and cfg.client_secret:
        return ClientCredentials(
            cfg.token_url, cfg.client_id, cfg.client_secret,
            method=cfg.token_auth_method, scope=cfg.scope, timeout=cfg.timeout,
        )
    return NoAuth()
