"""The whole exception tree of scim-replicator, and whether each error is worth retrying.

    ReplicatorError                     base of everything we raise on purpose
    ├── ConfigError                     bad configuration; names the field; before any I/O   (terminal)
    ├── StateError                      the state file cannot be used (not SQLite, a directory, no permission,
    │                                   a full disk, from a newer version) or another run holds it (terminal)
    ├── ListenError                     the daemon cannot serve its `listen` address (in use, not ours) (terminal)
    └── ScimError                       anything that went wrong talking to a SCIM server
        ├── TransportError              connect error, reset, TLS failure, timeout          (retryable)
        │   ├── ScimTimeoutError        no answer within the configured timeout             (retryable)
        │   └── TLSError                a TLS handshake that failed                          (terminal)
        │       └── CertificateError    certificate not trusted or not for this host; also an AuthError (stops the cycle)
        ├── AuthError                   token endpoint refused us, or 401/403 after a refresh (terminal)
        │   └── RedirectError           a redirect off the configured origin, or one we cannot follow (terminal)
        ├── ProtocolError               the answer is not the SCIM we expect (bad JSON, wrong shape) (terminal)
        ├── UnprovenAbsenceError        a create held: nothing can show the object is not there already (terminal)
        └── ScimStatusError             a non-2xx answer; keeps status, scimType, detail, Retry-After
            ├── BadRequestError         400: the server refuses this resource               (terminal, per resource)
            ├── NotFoundError           404                                                  (terminal; success on DELETE)
            ├── ConflictError           409: uniqueness → adopt the existing object         (terminal)
            ├── PreconditionError       412: ETag mismatch                                   (terminal)
            ├── PayloadTooLargeError    413                                                  (terminal)
            ├── RequestTimeoutError     408: the server gave up waiting for the request      (retryable)
            ├── RateLimitedError        429                                                  (retryable, honours Retry-After)
            ├── ServerError             5xx                                                  (retryable; 501 is not)
            └── UnexpectedStatusError   any other status                                     (terminal)

Messages never contain secrets: the SCIM client builds them from method, URL path and the server's words.
"""

from __future__ import annotations


class ReplicatorError(Exception):
    """Base class of every error scim-replicator raises on purpose."""

    retryable = False


class ConfigError(ReplicatorError):
    """The configuration is invalid; the message names the field."""


class StateError(ReplicatorError):
    """The state database cannot be used, or another run holds it; the message names the file."""


class ListenError(ReplicatorError):
    """The daemon cannot serve `listen`; the message names the setting and the address."""


class ScimError(ReplicatorError):
    """A call to a SCIM server failed."""


class TransportError(ScimError):
    """The request did not get an HTTP answer (connect error, reset, TLS).

    `sent` is False when the connection was never made, so the server cannot have acted on it.
    """

    retryable = True

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ScimTimeoutError(TransportError):
    """The request got no answer in time."""


class TLSError(TransportError):
    """The server's certificate was refused (or TLS failed): retrying will not help."""

    retryable = False


class AuthError(ScimError):
    """Authentication failed: the token endpoint refused us, or the server did after a refresh."""


class CertificateError(TLSError, AuthError):
    """The server's certificate was refused: not signed by a CA we trust, or made out to another host.

    Every request to that server fails alike, so it stops the cycle wherever refused credentials do (a
    kind of AuthError: the server could not prove it is the one configured; exit 3), and is never
    retried. Other TLS failures (a server not speaking TLS there, a handshake cut short) stay TLSError.
    """


class RedirectError(AuthError):
    """A redirect we do not follow: to another scheme, host or port than the one configured, without a
    Location, past the hop limit, or one that would turn a write into a GET.

    A kind of AuthError because whatever answers there is not the server we were configured to trust:
    it stops the cycle wherever refused credentials do (exit 3), and is never retried.
    """


class ProtocolError(ScimError):
    """The server answered with something that is not the SCIM we expect."""


class UnprovenAbsenceError(ScimError):
    """A create not sent: the destination could neither be listed completely nor searched, so nothing
    shows that the object is not there already (posting could duplicate it)."""


class ScimStatusError(ScimError):
    """A non-2xx answer, with the server's own words kept."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        scim_type: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail
        self.retry_after = retry_after


class BadRequestError(ScimStatusError):
    """400: the server refuses this request."""


class NotFoundError(ScimStatusError):
    """404: no such resource."""


class ConflictError(ScimStatusError):
    """409: a uniqueness conflict (the object already exists) or a version mismatch."""


class PreconditionError(ScimStatusError):
    """412: the ETag precondition failed."""


class PayloadTooLargeError(ScimStatusError):
    """413: the request is larger than the server accepts."""


class RequestTimeoutError(ScimStatusError):
    """408: the server timed the request out before acting on it (PingOne lists it as one to retry)."""

    retryable = True


class RateLimitedError(ScimStatusError):
    """429: too many requests; `retry_after` says how long to pause, when the server said."""

    retryable = True


class ServerError(ScimStatusError):
    """5xx: the server failed; retryable except 501 Not Implemented."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status != 501


class UnexpectedStatusError(ScimStatusError):
    """A status we have no specific meaning for."""
