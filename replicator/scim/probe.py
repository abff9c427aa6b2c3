"""The probe of a side's base URL before any write: the requests, and the error a bad answer raises.

`probe_base` asks for ServiceProviderConfig (and for /Users?count=1 when that is missing) and has
`diagnosis.judge_base` say what is wrong; `probe_endpoint` reads one resource of a kind (`check`).
A connection that cannot be made is not retried here: the cycle stops at once with the host, port
and cause. A bad verdict raises the error the rest of the house already handles, so the cycle stops
before any write and the command line exits 3: TransportError (unreachable), AuthError (credentials),
ProtocolError (a wrong path, not SCIM, a failing server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replicator.errors import AuthError, ProtocolError, RedirectError, ScimStatusError, TLSError, TransportError
from replicator.pipeline.urls import shown_url
from replicator.scim.auth import TokenEndpointTLSError, TokenEndpointUnreachable
from replicator.scim.diagnosis import (
    Answer,
    Finding,
    Problem,
    Side,
    judge_base,
    judge_endpoint,
    needs_users_probe,
    tls_finding,
)
from replicator.scim.status import RefusedCredentials, tls_error, tls_failure_of

if TYPE_CHECKING:
    from yarl import URL

    from replicator.scim.transport import Body, HttpTransport


def side_of(transport: HttpTransport, credentials: str) -> Side:
    """The facts a message names: the side, its base URL as fit to show, how it authenticates."""
    return Side(transport.name, shown_url(transport.base_url), credentials)


async def ask(transport: HttpTransport, url: URL, params: dict[str, str] | None = None) -> Answer:
    """GET `url` once (retrying what the transport retries, but not a connection that cannot be made)
    and return what came back. A TLS failure raises what it is, with the side and the URL; redirect
    refusals and the token endpoint's own errors pass through: their messages are precise."""
    path = url.path
    try:
        reply = await transport.request("GET", url, params=params, retry_unconnected=False)
    except RefusedCredentials as exc:
        return Answer(path, exc.status)
    except ScimStatusError as exc:
        return Answer(path, exc.status)
    except (TokenEndpointTLSError, TokenEndpointUnreachable, RedirectError):
        raise
    except TLSError as exc:  # (before AuthError: a CertificateError is both)
        failure = tls_failure_of(exc)
        if failure is None:
            raise
        raise tls_error(tls_finding(side_of(transport, ""), *failure).message, failure[1]) from exc
    except AuthError:
        raise  # (an AuthError that is not a 401/403: the token endpoint's own)
    except TransportError as exc:
        words = str(exc)
        return Answer(path, None, failure=words.split(": ", 1)[-1] if words.startswith("GET ") else words)
    return Answer(path, reply.status, reply.body)


async def probe_base(transport: HttpTransport, credentials: str) -> tuple[Finding, Body | None]:
    """The verdict on the side's base URL, and the ServiceProviderConfig body when there is one
    (None: the server has none, or failed: the defaults apply). Raises when the verdict says what is
    wrong; a failing server (5xx, 429 after the retries) says nothing of the URL: the cycle goes on as
    before, and its reads and writes meet the failure (a read then is incomplete), so only `check`
    reports it."""
    base = transport.base_url
    config = await ask(transport, base / "ServiceProviderConfig")
    users = await ask(transport, base / "Users", {"count": "1"}) if needs_users_probe(config) else None
    finding = judge_base(side_of(transport, credentials), config, users)
    raise_unless_ok(finding)
    return finding, (config.body if finding.ok and not finding.no_config else None)


async def probe_endpoint(transport: HttpTransport, credentials: str, kind: str, endpoint: str) -> tuple[Finding, Body]:
    """The verdict on one resource endpoint, read with count=1, and the answer's body."""
    answer = await ask(transport, transport.base_url / endpoint, {"count": "1"})
    return judge_endpoint(side_of(transport, credentials), kind, answer), answer.body


def raise_unless_ok(finding: Finding) -> None:
    """Raise the error of the house that a bad finding is (the cycle stops; exit 3); a failing server
    is not one (see `probe_base`)."""
    if finding.ok or finding.problem is Problem.SERVER:
        return
    if finding.problem is Problem.UNREACHABLE:
        raise TransportError(finding.message, sent=False)
    if finding.problem is Problem.CREDENTIALS:
        raise AuthError(finding.message)
    if finding.problem is Problem.TLS:
        raise TLSError(finding.message, sent=False)
    raise ProtocolError(finding.message)
