"""The requests the PingOne directory sends are the document's: the request check itself refuses what
the OpenAPI document does not allow, and a cleared attribute goes as a PUT of the whole user (no
attribute of the document's User is nullable)."""

from __future__ import annotations

from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SideConfig, pingone_urls
from replicator.cycle import INCREMENTAL
from replicator.pingone.writing import user_update
from replicator.testing.pingone import Environment, PingOneEmulator, serve_pingone
from tests.pingone.shapes import assert_requests_documented, request_problems, validate_request

USERS = "/v1/environments/e/users"


def test_the_request_check_refuses_what_the_document_does_not_allow() -> None:
    """An undeclared query parameter, a limit past 1000, a read-only property, a null, a body where none
    is taken, a wrong content type, and a SCIM query outside RFC 7644 are each reported."""
    def problems(method: str, path: str, query: list[tuple[str, str]] = [], body: bytes = b"",  # noqa: B006
                 content_type: str = "application/json") -> list[str]:
        return request_problems(method, path, query, content_type if body else "", body)

    assert problems("GET", USERS, [("filter", 'username eq "a"'), ("limit", "10"), ("cursor", "x")]) == []
    assert problems("GET", "/v1/environments/e/groups/g/memberOfGroups", [("limit", "1000")])
    assert problems("GET", USERS, [("limit", "1001")])
    assert problems("GET", USERS, [("count", "10")])
    assert problems("POST", USERS, body=b'{"username": "a", "email": "a@example.com", "id": "x"}')
    assert problems("PATCH", f"{USERS}/u", body=b'{"username": "a", "email": "a@example.com", "title": null}')
    assert problems("PATCH", f"{USERS}/u", body=b'{"title": "Boss"}')
    assert problems("DELETE", f"{USERS}/u", body=b'{"id": "x"}')
    assert problems("POST", USERS, body=b'{"username": "a", "email": "a@example.com"}', content_type="text/plain")
    assert problems("GET", "/scim/environments/e/v2/Users", [("startIndex", "0")])
    assert problems("GET", "/scim/environments/e/v2/Users", [("limit", "5")])
    assert problems("GET", "/v1/environments/e/nothing")


def test_a_change_is_a_patch_with_username_and_email_and_a_clear_a_put() -> None:
    """Changed attributes go as a PATCH carrying username and email; a cleared one as a PUT of the whole
    user without it; both bodies validate against the document."""
    after = {"username": "ada", "email": "ada@example.com", "name": {"given": "Ada"}}
    method, body = user_update(after, {"name": {"given": "Ada"}})
    assert (method, body) == ("PATCH", after)
    validate_request("PATCH", "/environments/e/users/u", body)
    method, body = user_update(after, {"title": None})
    assert (method, body) == ("PUT", after)
    validate_request("PUT", "/environments/e/users/u", body)


def side(emulator: PingOneEmulator, env: Environment) -> SideConfig:
    return pingone_urls(SideConfig(kind="pingone", pingone_environment=env.id, client_id=env.client_id,
                                   client_secret=env.client_secret, api_url=emulator.api_url,
                                   auth_url=emulator.auth_url, scim_url=emulator.scim_url))


async def test_a_title_cleared_on_the_source_is_cleared_on_the_destination(tmp_path: Path) -> None:
    """A title removed on the source is gone on the destination after one cycle, by requests the document
    allows, and the next cycle writes nothing."""
    async with serve_pingone(record=True) as emulator:
        source, destination = emulator.add_environment("src-env"), emulator.add_environment("dst-env")
        ada = source.add_user("ada", title="Director", name={"given": "Ada", "family": "Lovelace"})
        config = Config(source=side(emulator, source), destination=side(emulator, destination),
                        state=str(tmp_path / "s.db"))
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        del source.directory.users[ada["id"]]["title"]
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", (result.summary(), result.failures)
        (copied,) = destination.directory.users.values()
        assert "title" not in copied and copied["name"] == {"given": "Ada", "family": "Lovelace"}
        assert result.destination_requests.get("PUT") == 1 and "PATCH" not in result.destination_requests
        again = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert not {m: n for m, n in again.destination_requests.items() if m != "GET"}, again.destination_requests
        assert_requests_documented(emulator.recorded)
