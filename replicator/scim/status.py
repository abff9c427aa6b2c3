"""HTTP answers and aiohttp failures, translated once into the error tree of `replicator.errors`.

A non-2xx answer becomes the ScimStatusError subclass for its status (`status_error_class`, the
status -> error table), keeping the server's words (scimType and detail: redacted, cut short) and
its Retry-After. An aiohttp failure becomes exactly one TransportError kind, saying whether the request
can have reached the server (`sent`). This is the only module that knows aiohttp's exceptions for SCIM
calls; the client hands it every one it catches (and the token request, `auth`, the words of its
connection and TLS failures: `connect_failure_words`, `tls_failure_words`). Pure; no I/O.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote, quote_plus

import aiohttp
from yarl import URL

from replicator.errors import (
    AuthError,
    BadRequestError,
    CertificateError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionError,
    RateLimitedError,
    RequestTimeoutError,
    ScimStatusError,
    ScimTimeoutError,
    ServerError,
    TLSError,
    TransportError,
    UnexpectedStatusError,
)
from replicator.scim.diagnosis import Side, tls_request_message
from replicator.scim.retry import parse_retry_after
from replicator.scim.wire import decode_error

# what the client catches around one HTTP exchange and hands to `transport_error`
FOREIGN_ERRORS = (TimeoutError, aiohttp.ClientError)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and its URL-encoded forms) replaced by ***."""
    for secret in secrets:
        if len(secret) >= 4:
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
    return text


class RefusedCredentials(AuthError):
    """A 401 or 403 from a SCIM server (after a refresh, where one helps); `status` says which."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def refused_credentials(method: str, url: URL, status: int, server: str, *, configured: bool) -> RefusedCredentials:
    """The error for a 401/403 answer: whether we sent credentials at all is in its words."""
    why = "refused our credentials" if configured else "requires credentials and none are configured"
    return RefusedCredentials(f"{method} {url.path} answered {status}: {server} {why}", status=status)


_STATUS_CLASSES: dict[int, type[ScimStatusError]] = {
    400: BadRequestError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionError,
    408: RequestTimeoutError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
}


def status_error_class(status: int) -> type[ScimStatusError]:
    """Return the most specific error class for an HTTP status (401/403 are handled as AuthError)."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if 500 <= status <= 599:
        return ServerError
    return UnexpectedStatusError


def status_overloads(status: int | None) -> bool:
    """Statuses that mean 'send less': the concurrency limit is cut on them."""
    return status in (429, 503)


# what the certificate trouble is: not trusted (a CA to add), not for this host (another URL), other
Certificate = Literal["untrusted", "other host", ""]
_HOST_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def tls_failure_words(exc: aiohttp.ClientSSLError) -> tuple[str, Certificate]:
    """Why a TLS handshake failed, in words with OpenSSL's reason code ("TLS handshake failed
    (WRONG_VERSION_NUMBER: the server does not speak TLS there; does it want http://?)"), and what was
    wrong with the certificate, if that was it."""
    cause = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = getattr(cause, "verify_code", None)
        said = f"{getattr(cause, 'reason', None) or 'CERTIFICATE_VERIFY_FAILED'}: " \
               f"{(getattr(cause, 'verify_message', None) or str(cause))[:200]}"
        if code in _HOST_MISMATCH:
            return f"the server's certificate is not for this host ({said})", "other host"
        return f"the server's certificate is not trusted ({said})", "untrusted"
    reason = getattr(cause, "reason", None)
    if reason == "WRONG_VERSION_NUMBER":
        return f"TLS handshake failed ({reason}: the server does not speak TLS there; does it want http://?)", ""
    if isinstance(cause, ssl.SSLError) and reason:
        return f"TLS handshake failed ({reason}: {str(cause)[:200]})", ""
    return f"TLS handshake failed ({type(exc).__name__}: {str(cause or exc)[:200]})", ""


def tls_error(message: str, certificate: Certificate) -> TLSError:
    """The error for a TLS failure: a CertificateError when the certificate was refused (every request
    there fails alike: it stops the cycle), else a TLSError."""
    return CertificateError(message, sent=False) if certificate else TLSError(message, sent=False)


def tls_failure_of(exc: TLSError) -> tuple[str, Certificate] | None:
    """The words of `tls_failure_words` for a TLSError that `transport_error` made (None for another)."""
    return tls_failure_words(exc.__cause__) if isinstance(exc.__cause__, aiohttp.ClientSSLError) else None


def connect_failure_words(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection could not be made, in words: "connection refused", "host name not found (DNS)"."""
    cause = exc.os_error
    if isinstance(exc, getattr(aiohttp, "ClientConnectorDNSError", ())) or isinstance(cause, socket.gaierror):
        return f"host name not found (DNS: {(cause.strerror or str(cause)).lower()})" if cause else "host name not found"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(cause, TimeoutError):
        return "connection timed out"
    if cause is not None and cause.strerror:
        return cause.strerror.lower()
    return type(exc).__name__


def error_from_response(method: str, url: URL, status: int, body: bytes | bytearray, retry_after: str | None,
                        secrets: list[str]) -> ScimStatusError:
    """The typed error for a non-2xx answer: its class by status, the server's words redacted of `secrets`."""
    words_sent = decode_error(body)
    scim_type = redact(words_sent.scimType, secrets)[:100] if isinstance(words_sent.scimType, str) else None
    # a server may echo what it was sent (the Authorization header included)
    detail = redact(str(words_sent.detail), secrets)[:500] if words_sent.detail is not None else None
    words = " ".join(w for w in (scim_type, detail) if w)
    message = f"{method} {url.path} answered {status}" + (f": {words}" if words else "")
    cls = status_error_class(status)
    return cls(message, status=status, scim_type=scim_type, detail=detail, retry_after=parse_retry_after(retry_after))


def transport_error(exc: BaseException, method: str, url: URL, server: str, side: Side | None = None) -> TransportError:
    """Our one error for a failure of `method url` to `server` that got no HTTP answer (one of FOREIGN_ERRORS).

    Checked most specific first (aiohttp's ServerTimeoutError is a TimeoutError too, its certificate
    errors are connector errors): a timeout (ScimTimeoutError; sent: the server may have acted), an
    invalid URL, a TLS failure (TLSError, terminal; not sent; a CertificateError when the certificate was
    refused), a connection never made (not sent), anything else (sent: the connection broke after the request may have gone out).
    `side`: a TLS failure is then worded as the probe words it, with what to set (a certificate can
    change after the probe: `diagnosis.tls_request_message`).
    """
    if isinstance(exc, TimeoutError):
        return ScimTimeoutError(f"{method} {url.path}: no answer from {server} in time", sent=True)
    if isinstance(exc, aiohttp.InvalidURL):
        return TransportError(f"{method}: invalid URL for {server}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        words, certificate = tls_failure_words(exc)
        message = (tls_request_message(side, f"{method} {url.path}", words, certificate) if side is not None
                   else f"{method} {url.path}: {server}: {words}")
        return tls_error(message, certificate)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(f"{method} {url.path}: cannot connect to {server} at {exc.host}:{exc.port}: "
                              f"{connect_failure_words(exc)}", sent=False)
    return TransportError(f"{method} {url.path}: {server} connection failed: {type(exc).__name__}", sent=True)
