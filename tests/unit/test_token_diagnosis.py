"""The token endpoint's failures: what each says (pure), the settings a derived token URL comes from, and
whether one that cannot be reached is retried (not before its first token, after it)."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from replicator.config import SideConfig, pingone_urls
from replicator.errors import CertificateError, TLSError
from replicator.pipeline.writes import stops_the_cycle
from replicator.scim.auth import ClientCredentials, TokenEndpointUnreachable, token_url_derived_from
from replicator.scim.diagnosis import (
    Problem,
    Side,
    TokenEndpoint,
    tls_finding,
    tls_request_message,
    token_refused_message,
    token_tls_message,
)
from tests.harness import free_port

SECRET = "fake-client-secret-x9"
ENDPOINT = TokenEndpoint("source", "https://idp.example/as/token")


@pytest.mark.parametrize(("status", "error", "words"), [
    (401, "invalid_client", "it refused the client credentials; check source.client_id and source.client_secret"),
    (400, "invalid_client", "it refused the client credentials; check source.client_id and source.client_secret"),
    (401, "", "it refused the client credentials; check source.client_id"),
    (400, "invalid_scope", "it refused the scope; check source.scope"),
    (400, "unauthorized_client", "the client may not use the client credentials grant"),
    (404, "", "expected a token (JSON with an access_token); is source.token_url right?"),
    (503, "", "expected a token; try again later"),
])
def test_a_refusal_names_the_setting_to_check(status: int, error: str, words: str) -> None:
    """Each RFC 6749 5.2 error (and a status without one) points at the setting that can fix it."""
    message = token_refused_message(ENDPOINT, status, error, "")
    assert message.startswith(f"source token endpoint https://idp.example/as/token answered {status}"), message
    assert words in message, message


def test_a_derived_token_url_names_the_settings_it_comes_from() -> None:
    """token_url set: () (token_url is named); derived from the region's auth URL: region and environment;
    from auth_url: auth_url and environment."""
    explicit = pingone_urls(SideConfig(kind="pingone", pingone_environment="e1", token_url="https://idp.example/t"))
    assert token_url_derived_from(explicit, "source") == ()
    by_region = pingone_urls(SideConfig(kind="pingone", pingone_environment="e1", pingone_region="eu"))
    assert token_url_derived_from(by_region, "source") == ("source.pingone_region", "source.pingone_environment")
    by_auth_url = pingone_urls(SideConfig(kind="pingone", pingone_environment="e1", auth_url="https://auth.example"))
    assert token_url_derived_from(by_auth_url, "source") == ("source.auth_url", "source.pingone_environment")
    assert token_url_derived_from(SideConfig(token_url="https://idp.example/t"), "source") == ()


async def test_a_token_endpoint_is_retried_only_once_it_gave_a_token() -> None:
    """A connection to the token endpoint that cannot be made is not retryable before the first token
    (a wrong token URL is said at once), and is once one was got (a blip during a long run)."""
    credentials = ClientCredentials(f"http://127.0.0.1:{free_port()}/as/token", "id", SECRET, side="source")
    async with aiohttp.ClientSession() as session:
        for fetched, retryable in ((0, False), (1, True)):
            credentials.fetches = fetched
            with pytest.raises(TokenEndpointUnreachable) as caught:
                await credentials.header(session)
            assert caught.value.retryable is retryable and caught.value.sent is False
            assert not isinstance(caught.value, TLSError) and SECRET not in str(caught.value)


@pytest.mark.parametrize(("certificate", "hint"), [
    ("untrusted", "; set destination.ca_bundle to a PEM file with the CA that signed it"),
    ("other host", "; is the host in destination.url the one its certificate names?"),
    ("", ""),
])
def test_a_tls_failure_names_the_setting_for_its_certificate(certificate: str, hint: str) -> None:
    """A certificate we do not trust: ca_bundle; one for another host: the URL; a plain-HTTP port: the words say it."""
    finding = tls_finding(Side("destination", "https://scim.example/v2"), "words", certificate)
    assert finding.problem is Problem.TLS and finding.message.startswith(f"destination https://scim.example/v2: words{hint}")


def test_a_tls_failure_during_the_cycle_names_the_request_and_the_sides_setting() -> None:
    """A request's TLS failure after the probe: the side, its URL, the request and the probe's hint; the
    SCIM API beside PingOne's Platform API ("destination SCIM") names the side's settings."""
    message = tls_request_message(Side("destination SCIM", "https://scim.example/v2"), "PATCH /v2/Users/1", "words",
                                  "untrusted")
    assert message.startswith("destination SCIM https://scim.example/v2: PATCH /v2/Users/1: words; set "
                              "destination.ca_bundle to a PEM file") and "(destination.verify_tls = false" in message


def test_a_certificate_for_another_host_names_the_setting_that_holds_the_host() -> None:
    """A certificate for another host names the setting the failed host came from: `url` for a SCIM
    API, `api_url` for PingOne's Platform API, and for a token endpoint `token_url` or the settings the
    PingOne preset derives it from (not the side's `url`)."""
    question = "; is the host in destination.{} the one its certificate names?"
    scim = tls_request_message(Side("destination SCIM", "https://scim.example/v2"), "GET /v2/Users", "words",
                               "other host")
    platform = tls_request_message(Side("destination", "https://api.pingone.eu/v1/environments/e", url_setting="api_url"),
                                   "GET /v1/environments/e/users", "words", "other host")
    assert scim.endswith(question.format("url")) and platform.endswith(question.format("api_url"))
    derived = TokenEndpoint("destination", "https://auth.pingone.eu/e/as/token",
                            ("destination.pingone_region", "destination.pingone_environment"))
    assert token_tls_message(TokenEndpoint("destination", "https://idp.example/as/token"), "words", "other host") \
        == "destination token endpoint https://idp.example/as/token: words; is destination.token_url right?"
    assert token_tls_message(derived, "words", "other host").endswith(
        "words; are destination.pingone_region and destination.pingone_environment right? (destination.token_url "
        "sets the token URL itself)")
    assert token_tls_message(derived, "words", "untrusted").endswith("words; set destination.ca_bundle to a PEM file "
                                                                     "with the CA that signed it (destination."
                                                                     "verify_tls = false skips the check: for "
                                                                     "testing only)")


def test_a_token_endpoint_certificate_refused_stops_the_cycle_and_a_handshake_cut_short_does_not() -> None:
    """A token request whose certificate is refused (met at a refresh mid-cycle) fails every later one
    alike: its error is a CertificateError, which stops the cycle; other TLS failures stay transport ones."""
    credentials = ClientCredentials(f"https://127.0.0.1:{free_port()}/as/token", "id", SECRET, side="source")
    key = ConnectionKey("127.0.0.1", 443, True, True, None, None, None)
    refused = credentials._no_answer(aiohttp.ClientConnectorCertificateError(key, ssl.SSLCertVerificationError(1, "self-signed")))
    cut = credentials._no_answer(aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, "EOF occurred")))
    assert isinstance(refused, CertificateError) and isinstance(refused, TLSError) and stops_the_cycle(refused)
    assert "source.ca_bundle" in str(refused) and SECRET not in str(refused)
    assert isinstance(cut, TLSError) and not isinstance(cut, CertificateError) and not stops_the_cycle(cut)
