"""The pure judgement of a side's answers (`replicator.scim.diagnosis`): what is wrong, and what to try."""

from __future__ import annotations

import pytest

from replicator.scim.diagnosis import (
    Answer,
    Problem,
    Side,
    judge_base,
    judge_endpoint,
    needs_users_probe,
    not_scim_reason,
)
from replicator.scim.urns import LIST_RESPONSE, SERVICE_PROVIDER_CONFIG

SIDE = Side("destination", "https://scim.example/scim", "bearer")
CONFIG_OK = Answer("/scim/ServiceProviderConfig", 200, b'{"schemas": ["%s"]}' % SERVICE_PROVIDER_CONFIG.encode())
LIST_OK = Answer("/scim/Users", 200, b'{"schemas": ["%s"], "totalResults": 0, "Resources": []}' % LIST_RESPONSE.encode())


def test_a_scim_service_provider_config_is_ok_without_asking_users() -> None:
    """A ServiceProviderConfig with its schema URN settles it: no /Users probe is needed."""
    assert not needs_users_probe(CONFIG_OK)
    assert judge_base(SIDE, CONFIG_OK).ok


def test_404_on_config_and_users_is_a_wrong_path_with_the_v2_hint() -> None:
    """404 on both: a wrong path, naming both requests, asking about /v2 and showing PingOne's base."""
    config = Answer("/scim/ServiceProviderConfig", 404)
    assert needs_users_probe(config)
    finding = judge_base(SIDE, config, Answer("/scim/Users", 404))
    assert finding.problem is Problem.WRONG_PATH
    assert finding.message.startswith("destination https://scim.example/scim is not a SCIM base URL: GET "
                                      "/scim/ServiceProviderConfig and GET /scim/Users answered 404")
    assert "does it end in /v2?" in finding.message and "environments/<env>/v2" in finding.message


def test_a_server_without_service_provider_config_but_scim_users_is_ok() -> None:
    """404 on ServiceProviderConfig but a ListResponse on /Users: SCIM with the defaults."""
    finding = judge_base(SIDE, Answer("/scim/ServiceProviderConfig", 404), LIST_OK)
    assert finding.ok and finding.no_config


@pytest.mark.parametrize(("body", "reason"), [
    (b"<!DOCTYPE html><html><head>", "an HTML page"),
    (b'{"status": "up"}', "JSON without SCIM schemas"),
    (b"not json", "a body that is not JSON"),
    (b"[1, 2]", "JSON that is not an object"),
    (b"", "an empty body"),
    (b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"]}',
     "SCIM JSON of another schema (urn:ietf:params:scim:api:messages:2.0:error)"),
])
def test_what_a_non_scim_answer_is_is_said(body: bytes, reason: str) -> None:
    """Each kind of non-SCIM answer gets its own words."""
    assert not_scim_reason(body, SERVICE_PROVIDER_CONFIG) == reason
    assert judge_base(SIDE, Answer("/scim/ServiceProviderConfig", 200, body)).problem is Problem.NOT_SCIM


def test_a_config_without_schemas_but_its_attributes_is_taken() -> None:
    """Some servers leave `schemas` out of ServiceProviderConfig: two of its attributes are enough."""
    assert not_scim_reason(b'{"patch": {"supported": true}, "filter": {"supported": true}}', SERVICE_PROVIDER_CONFIG) is None


@pytest.mark.parametrize(("credentials", "status", "words"), [
    ("none", 401, "requires credentials and none are configured; set destination.token (or destination.username"),
    ("bearer", 401, "refused our credentials (the bearer token in destination.token was sent)"),
    ("basic", 401, "destination.username and destination.password was sent"),
    ("oauth", 401, "destination.client_id and destination.client_secret got from destination.token_url"),
    ("bearer", 403, "refused our credentials access (the bearer token in destination.token was sent); grant them"),
])
def test_refused_credentials_say_whether_any_were_configured_and_where(credentials: str, status: int,
                                                                        words: str) -> None:
    """401/403: configured or not, and the setting that carries them."""
    side = Side("destination", "https://scim.example/v2", credentials)
    finding = judge_base(side, Answer("/v2/ServiceProviderConfig", status))
    assert finding.problem is Problem.CREDENTIALS and words in finding.message, finding.message


def test_no_answer_is_unreachable_with_the_words_of_the_failure() -> None:
    """No HTTP answer: unreachable, with the host, port and cause the transport gave."""
    finding = judge_base(SIDE, Answer("/scim/ServiceProviderConfig", None,
                                      failure="cannot connect to destination at 127.0.0.1:9: connection refused"))
    assert finding.problem is Problem.UNREACHABLE and "127.0.0.1:9: connection refused" in finding.message


def test_a_missing_groups_endpoint_suggests_users_only() -> None:
    """/Groups answering 404 (the base is right): set sync.groups = false."""
    finding = judge_endpoint(SIDE, "Group", Answer("/scim/Groups", 404))
    assert not finding.ok and "set sync.groups = false" in finding.message
    assert judge_endpoint(SIDE, "User", LIST_OK).ok


def test_a_server_failure_is_not_called_a_wrong_path() -> None:
    """A 5xx after a 5xx on ServiceProviderConfig: the server failed; try later."""
    finding = judge_base(SIDE, Answer("/scim/ServiceProviderConfig", 503), Answer("/scim/Users", 503))
    assert finding.problem is Problem.SERVER and "try again later" in finding.message
