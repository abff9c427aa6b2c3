"""Diagnosis of a side's base URL before any write: what its answers say is wrong, and what to try.

The probe (`replicator.scim.probe`) asks a side for ServiceProviderConfig (and, when that is missing
or when `check` asks, for /Users and /Groups with count=1) and hands each `Answer` here. `judge_base`
and `judge_endpoint` turn answers into one `Finding`: ok, or a problem kind (wrong path, not SCIM,
credentials, unreachable, server failure) with one line naming the side, the URL, the status, what was
expected and what to try. A TLS handshake that failed (`tls_finding`; during the cycle, for any request:
`tls_request_message`) and the token endpoint's failures
(`token_*_message`, for `auth.ClientCredentials`) are worded the same way, naming the setting to check.
URLs come in without user info or query, so no secret is ever shown. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from replicator.scim.urns import LIST_RESPONSE, SERVICE_PROVIDER_CONFIG

SCIM_URN_PREFIX = "urn:ietf:params:scim:"
# ServiceProviderConfig attributes (RFC 7643 5): a JSON object with two of these but no `schemas` is
# still taken for one (some servers leave `schemas` out)
_CONFIG_ATTRIBUTES = frozenset({"patch", "bulk", "filter", "changepassword", "sort", "etag", "authenticationschemes"})
_PINGONE_HINT = "PingOne's SCIM base is https://scim-api.pingone.<region>/environments/<env>/v2"


class Problem(StrEnum):
    """What a finding says is wrong (OK: nothing)."""

    OK = "ok"
    WRONG_PATH = "wrong path"
    NOT_SCIM = "not SCIM"
    CREDENTIALS = "credentials refused"
    UNREACHABLE = "unreachable"
    TLS = "TLS failed"
    SERVER = "server failed"


@dataclass(frozen=True)
class Side:
    """The facts about one side a message needs: its name, its base URL (no secrets), how it
    authenticates (`credentials`: none, bearer, basic, oauth; "" when not known), and the setting that
    holds its host (`url_setting`: `url`, or `api_url` for PingOne's Platform API)."""

    name: str
    base_url: str
    credentials: str = ""
    url_setting: str = "url"


@dataclass(frozen=True)
class Answer:
    """What one probe request got: `status` and `body` of an HTTP answer, or (`status` None) the words
    of the failure that gave none (`failure`: "cannot connect to 127.0.0.1:9: connection refused")."""

    path: str
    status: int | None
    body: bytes | bytearray = b""
    failure: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Finding:
    """The verdict on a side: `problem` (OK when all is well) and the one line saying so."""

    problem: Problem
    message: str
    no_config: bool = False  # ok, but without a ServiceProviderConfig: the defaults apply

    @property
    def ok(self) -> bool:
        return self.problem is Problem.OK


def not_scim_reason(body: bytes | bytearray, urn: str) -> str | None:
    """None when `body` is SCIM JSON of the schema `urn` (ServiceProviderConfig or ListResponse), else
    what it is instead, in a few words ("an HTML page", "JSON without SCIM schemas")."""
    stripped = body.lstrip()
    if not stripped:
        return "an empty body"
    if stripped[:1] == b"<":
        return "an HTML page" if stripped[:200].lower().find(b"html") >= 0 else "XML or HTML"
    try:
        document: Any = msgspec.json.decode(stripped)
    except msgspec.DecodeError:
        return "a body that is not JSON"
    if not isinstance(document, dict):
        return "JSON that is not an object"
    schemas = document.get("schemas")
    urns = {s.lower() for s in schemas if isinstance(s, str)} if isinstance(schemas, list) else set()
    if urn.lower() in urns:
        return None
    keys = {str(k).lower() for k in document}
    if not urns and urn == SERVICE_PROVIDER_CONFIG and len(keys & _CONFIG_ATTRIBUTES) >= 2:
        return None
    if not urns and urn == LIST_RESPONSE and keys & {"resources", "totalresults"}:
        return None
    if any(u.startswith(SCIM_URN_PREFIX) for u in urns):
        return f"SCIM JSON of another schema ({sorted(urns)[0]})"
    return "JSON without SCIM schemas"


def credential_settings(side: str) -> str:
    """The settings that carry a side's credentials, in words."""
    return (f"{side}.token (or {side}.username and {side}.password, or {side}.client_id, "
            f"{side}.client_secret and {side}.token_url)")


def _configured_setting(side: str, credentials: str) -> str:
    return {
        "bearer": f"the bearer token in {side}.token",
        "basic": f"the user and password in {side}.username and {side}.password",
        "oauth": f"the token {side}.client_id and {side}.client_secret got from {side}.token_url",
    }.get(credentials, "our credentials")


def credentials_finding(side: Side, answer: Answer) -> Finding:
    """A 401 or 403: whether credentials were configured at all, and which setting carries them."""
    where = f"{side.name} {side.base_url}: GET {answer.path} answered {answer.status}"
    if side.credentials == "none":
        return Finding(Problem.CREDENTIALS, f"{where}: the server requires credentials and none are configured; "
                                            f"set {credential_settings(side.name)}")
    sent = _configured_setting(side.name, side.credentials)
    if answer.status == 403:
        return Finding(Problem.CREDENTIALS, f"{where}: the server refused our credentials access ({sent} was "
                                            "sent); grant them read and write access to Users and Groups")
    return Finding(Problem.CREDENTIALS, f"{where}: the server refused our credentials ({sent} was sent); check "
                                        "that they are current and meant for this server")


def _path_hint(side: Side) -> str:
    hint = f"is {side.name}.url the SCIM base URL? "
    if not side.base_url.rstrip("/").endswith("/v2"):
        hint += "does it end in /v2? "
    return hint + _PINGONE_HINT


def unreachable_finding(side: Side, answer: Answer) -> Finding:
    return Finding(Problem.UNREACHABLE, f"{side.name} {side.base_url} is unreachable: GET {answer.path}: "
                                        f"{answer.failure}; is the server running there, and are the host and "
                                        f"port in {side.name}.url right?")


def setting_name(side: str, name: str) -> str:
    """`side.name`, or `name` alone where the side is not known (a side's second API, "destination
    SCIM" beside PingOne's Platform API, has the side's settings)."""
    return f"{side.split(' ', 1)[0]}.{name}" if side else name


def tls_hint(side: str, certificate: str, url_setting: str = "url") -> str:
    """What to try when TLS with a side failed: the setting for a certificate we do not trust, the
    setting that holds the host (`url_setting`) for one made out to another host, nothing more when the
    words already say it (plain HTTP)."""
    if certificate == "untrusted":
        return (f"; set {setting_name(side, 'ca_bundle')} to a PEM file with the CA that signed it "
                f"({setting_name(side, 'verify_tls')} = false skips the check: for testing only)")
    if certificate == "other host":
        return f"; is the host in {setting_name(side, url_setting)} the one its certificate names?"
    return ""


def tls_finding(side: Side, words: str, certificate: str) -> Finding:
    """A TLS handshake with the side's base URL that failed (before any request was sent)."""
    return Finding(Problem.TLS, f"{side.name} {side.base_url}: {words}{tls_hint(side.name, certificate, side.url_setting)}")


def tls_request_message(side: Side, request: str, words: str, certificate: str) -> str:
    """A TLS handshake that failed for a request after the probe had passed (a certificate rotated to one
    that `ca_bundle` does not trust, a proxy intercepting, a certificate for another host): the request,
    then the probe's words and what to set."""
    return f"{side.name} {side.base_url}: {request}: {words}{tls_hint(side.name, certificate, side.url_setting)}"


@dataclass(frozen=True)
class TokenEndpoint:
    """The facts about a side's OAuth2 token endpoint a message needs: the side, the URL (no secrets),
    the settings it is derived from (the PingOne preset; () when `token_url` is set) and how the client
    credentials are sent (`token_auth_method`)."""

    side: str
    url: str
    derived_from: tuple[str, ...] = ()
    method: str = "client_secret_basic"

    def setting(self, name: str) -> str:
        return setting_name(self.side, name)

    @property
    def named(self) -> str:
        """The endpoint, with where its URL came from when it was derived."""
        named = f"{self.side} token endpoint {self.url}".lstrip()
        return f"{named} (derived from {_and(self.derived_from)})" if self.derived_from else named

    @property
    def url_question(self) -> str:
        """Whether the settings that make its URL are right, as a question."""
        if not self.derived_from:
            return f"is {self.setting('token_url')} right?"
        return f"are {_and(self.derived_from)} right? ({self.setting('token_url')} sets the token URL itself)"


def _and(names: tuple[str, ...]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def token_unreachable_message(endpoint: TokenEndpoint, words: str) -> str:
    """The token endpoint gave no answer (`words`: why, as for a SCIM URL)."""
    if not endpoint.derived_from:
        return (f"{endpoint.named} is unreachable: {words}; is the server running there, and are the host and "
                f"port in {endpoint.setting('token_url')} right?")
    return f"{endpoint.named} is unreachable: {words}; is the server running there, and {endpoint.url_question}"


def token_tls_message(endpoint: TokenEndpoint, words: str, certificate: str) -> str:
    """TLS with the token endpoint failed; a certificate for another host asks about the settings that
    make the token URL (`token_url`, or those the PingOne preset derives it from), not the side's `url`."""
    hint = f"; {endpoint.url_question}" if certificate == "other host" else tls_hint(endpoint.side, certificate)
    return f"{endpoint.named}: {words}{hint}"


def token_refused_message(endpoint: TokenEndpoint, status: int, error: str, description: str) -> str:
    """A token endpoint's answer that is not a token: what it said (RFC 6749 5.2 `error`), and the
    setting to check. The secret is never named, only the setting that holds it."""
    client_id, client_secret, scope = (endpoint.setting(n) for n in ("client_id", "client_secret", "scope"))
    said = " - ".join(w for w in (error, description) if w)
    where = f"{endpoint.named} answered {status}" + (f" ({said})" if said else "")
    if error == "invalid_client" or (status == 401 and error in ("", "invalid_request")):
        other = "client_secret_post" if endpoint.method == "client_secret_basic" else "client_secret_basic"
        how = "with HTTP basic" if endpoint.method == "client_secret_basic" else "in the form"
        return (f"{where}: it refused the client credentials; check {client_id} and {client_secret} "
                f"(sent {how}; {endpoint.setting('token_auth_method')} = \"{other}\" sends them the other way)")
    if error == "invalid_scope":
        return f"{where}: it refused the scope; check {scope}"
    if error in ("unauthorized_client", "unsupported_grant_type"):
        return (f"{where}: the client may not use the client credentials grant; allow it for the "
                f"application {client_id} names")
    if status >= 500:
        return f"{where}, expected a token; try again later, or ask the server's operators"
    if status in (400, 401, 403):
        return f"{where}, expected a token; check {client_id}, {client_secret} and {scope}"
    return f"{where}, expected a token (JSON with an access_token); {endpoint.url_question}"


def token_unusable_message(endpoint: TokenEndpoint) -> str:
    return f"{endpoint.named} answered 200 without a usable access_token, expected a token; {endpoint.url_question}"


def _not_scim_finding(side: Side, answer: Answer, reason: str, expected: str) -> Finding:
    return Finding(Problem.NOT_SCIM, f"{side.name} {side.base_url} does not answer as SCIM: GET {answer.path} "
                                     f"answered {answer.status} with {reason}, expected {expected}; "
                                     f"{_path_hint(side)}")


def _other_status_finding(side: Side, answer: Answer, expected: str) -> Finding:
    problem = Problem.SERVER if (answer.status or 0) >= 500 else Problem.WRONG_PATH
    hint = "try again later, or ask the server's operators" if problem is Problem.SERVER else _path_hint(side)
    return Finding(problem, f"{side.name} {side.base_url}: GET {answer.path} answered {answer.status}, expected "
                            f"{expected}; {hint}")


_CONFIG_EXPECTED = f"JSON with schemas [{SERVICE_PROVIDER_CONFIG}]"
_LIST_EXPECTED = f"a SCIM ListResponse ({LIST_RESPONSE})"


def needs_users_probe(config: Answer) -> bool:
    """Whether the ServiceProviderConfig answer leaves the question open (missing, or a failure whose
    status says nothing of the path): then /Users tells a wrong path from a server without one."""
    return config.status is not None and not config.succeeded and config.status not in (401, 403)


def _answered(side: Side, answer: Answer, schema: str, expected: str, ok: str, *, no_config: bool = False
              ) -> Finding | None:
    """The verdict every probe shares: no answer, refused credentials, or a success that is SCIM (`ok`)
    or not; None for another status, which each probe judges its own way."""
    if answer.status is None:
        return unreachable_finding(side, answer)
    if answer.status in (401, 403):
        return credentials_finding(side, answer)
    if not answer.succeeded:
        return None
    reason = not_scim_reason(answer.body, schema)
    if reason is None:
        return Finding(Problem.OK, ok, no_config=no_config)
    return _not_scim_finding(side, answer, reason, expected)


def judge_base(side: Side, config: Answer, users: Answer | None = None) -> Finding:
    """The verdict on a side's base URL from its ServiceProviderConfig answer (and, when
    `needs_users_probe`, its /Users?count=1 answer)."""
    found = _answered(side, config, SERVICE_PROVIDER_CONFIG, _CONFIG_EXPECTED,
                      f"{side.name} {side.base_url} answers as SCIM (ServiceProviderConfig)")
    if found is not None:
        return found
    if users is None:
        raise ValueError("ServiceProviderConfig failed: the /Users answer is needed")
    found = _answered(side, users, LIST_RESPONSE, _LIST_EXPECTED,
                      f"{side.name} {side.base_url} answers as SCIM (no ServiceProviderConfig: GET {config.path} "
                      f"answered {config.status}; defaults apply)", no_config=True)
    if found is not None:
        return found
    if config.status == 404 and users.status == 404:
        return Finding(Problem.WRONG_PATH, f"{side.name} {side.base_url} is not a SCIM base URL: GET {config.path} "
                                           f"and GET {users.path} answered 404, expected SCIM JSON there; "
                                           f"{_path_hint(side)}")
    return _other_status_finding(side, users, _LIST_EXPECTED)


def judge_endpoint(side: Side, kind: str, answer: Answer) -> Finding:
    """The verdict on one resource endpoint (/Users, /Groups) from its GET ?count=1 answer."""
    found = _answered(side, answer, LIST_RESPONSE, _LIST_EXPECTED, f"{side.name}: GET {answer.path} reads {kind}s")
    if found is not None:
        return found
    if answer.status == 404 and kind == "Group":
        return Finding(Problem.WRONG_PATH, f"{side.name} {side.base_url}: GET {answer.path} answered 404: the "
                                           "server has no Groups endpoint; set sync.groups = false to replicate "
                                           "users only")
    return _other_status_finding(side, answer, _LIST_EXPECTED)
