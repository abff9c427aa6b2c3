"""A clear on the source goes to PingOne as a PUT of the whole user (no attribute of the document's User
is nullable); that PUT is built on the user as PingOne holds it, so what the replicator does not manage
on it (custom attributes, `account`, `lifecycle`, ...) survives, and it sends nothing read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from replicator.app import replicate
from replicator.config import Config
from replicator.cycle import INCREMENTAL
from replicator.pingone.writing import MANAGED_USER_ATTRIBUTES, NOT_SENT_BACK, READ_ONLY_PARTS, put_body
from replicator.pipeline import pingone as p1
from replicator.testing.pingone import serve_pingone
from tests.pingone.conftest import Served
from tests.pingone.shapes import _resolved, assert_requests_documented, document, validate_request
from tests.pingone.test_pingone_requests import side

KEPT = {"badgeNumber": "B-1234", "account": {"canAuthenticate": True, "status": "OK"},
        "lifecycle": {"status": "ACCOUNT_OK"}, "mfaEnabled": True, "verifyStatus": "ENABLED"}


async def test_a_clear_keeps_what_the_replicator_does_not_manage(tmp_path: Path) -> None:
    """PingOne -> PingOne: a title cleared on the source is gone on the destination after one PUT, and the
    custom attribute, account, lifecycle, mfaEnabled and verifyStatus set there directly are kept; every
    request is the document's; the next cycle writes nothing."""
    async with serve_pingone(record=True) as emulator:
        source, destination = emulator.add_environment("src-env"), emulator.add_environment("dst-env")
        destination.add_population("Employees")
        ada = source.add_user("ada", title="Director", name={"given": "Ada", "family": "Lovelace"})
        config = Config(source=side(emulator, source), destination=side(emulator, destination),
                        state=str(tmp_path / "s.db"))
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        (copied,) = destination.directory.users.values()
        copied.update(KEPT)  # set on the destination by another admin or app
        population = copied["population"]
        del source.directory.users[ada["id"]]["title"]
        result = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert result.outcome == "ok", (result.summary(), result.failures)
        assert result.destination_requests.get("PUT") == 1 and "PATCH" not in result.destination_requests
        (after,) = destination.directory.users.values()
        assert "title" not in after and after["name"] == {"given": "Ada", "family": "Lovelace"}
        assert {key: after.get(key) for key in KEPT} == KEPT
        assert after["population"] == population and after["enabled"] is True
        again = await replicate(config, mode=INCREMENTAL, dry_run=False)
        assert not {m: n for m, n in again.destination_requests.items() if m != "GET"}, again.destination_requests
        assert_requests_documented(emulator.recorded)  # the PUT included: no read-only property, no null


async def test_the_emulator_keeps_a_custom_attribute_as_pingone_does(served: Served) -> None:
    """POST users and PUT users/{id} accept an attribute outside the document's User (a custom attribute of
    the environment's user schema) and keep it; a PUT that leaves it out clears it (PUT replaces)."""
    body = {"username": "ann", "email": "ann@example.com", "badgeNumber": "B-1"}
    created = await served.dst.platform("POST", "users", body)
    assert created.status == 201 and created.body["badgeNumber"] == "B-1"
    path = f"users/{created.body['id']}"
    assert (await served.dst.platform("GET", path)).body["badgeNumber"] == "B-1"
    replaced = await served.dst.platform("PUT", path, {**body, "badgeNumber": "B-2", "title": "Lead"})
    assert replaced.status == 200 and (await served.dst.platform("GET", path)).body["badgeNumber"] == "B-2"
    await served.dst.platform("PUT", path, {"username": "ann", "email": "ann@example.com"})
    assert "badgeNumber" not in (await served.dst.platform("GET", path)).body


def _read_only(schema: dict[str, Any], where: str = "") -> set[str]:
    """The dotted names of the properties a schema marks readOnly, nested ones too."""
    found = set()
    for name, declared in _resolved(schema).get("properties", {}).items():
        if declared.get("readOnly") or _resolved(declared).get("readOnly"):
            found.add(f"{where}{name}")
        else:
            found |= _read_only(declared, f"{where}{name}.")
    return found


def test_the_lists_of_put_body_are_the_documents() -> None:
    """What put_body never sends back covers every readOnly property of the document's User, and the
    attributes it treats as the replicator's are User properties and every one `user_to_platform` writes."""
    user = document()["components"]["schemas"]["User"]
    ours = set(NOT_SENT_BACK) | {f"{key}.{part}" for key, parts in READ_ONLY_PARTS.items() for part in parts}
    assert _read_only(user) <= ours, _read_only(user) - ours
    assert MANAGED_USER_ATTRIBUTES.issubset(user["properties"])
    full = {"userName": "a", "externalId": "x", "nickName": "n", "title": "t", "preferredLanguage": "en",
            "locale": "en", "timezone": "Europe/Paris", "userType": "e", "emails": [{"value": "a@example.com"}],
            "name": {"givenName": "A", "familyName": "B", "middleName": "C", "formatted": "A B",
                     "honorificPrefix": "Dr", "honorificSuffix": "IV"},
            "phoneNumbers": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}],
            "addresses": [{"streetAddress": "s", "locality": "l", "region": "r", "postalCode": "p", "country": "FR"}],
            "photos": [{"value": "https://example.com/a.png"}]}
    assert set(p1.user_to_platform(full, population_id=None)) == MANAGED_USER_ATTRIBUTES


_values = st.one_of(st.text(max_size=3), st.booleans(), st.integers(),
                    st.dictionaries(st.sampled_from(["id", "type", "status", "lockedAt", "at", "x"]),
                                    st.text(max_size=3), max_size=3))
_names = st.one_of(st.sampled_from(sorted(NOT_SENT_BACK | MANAGED_USER_ATTRIBUTES | set(READ_ONLY_PARTS)
                                          | {"population", "lifecycle", "mfaEnabled"})),
                   st.text(min_size=1, max_size=6))
_managed = st.dictionaries(st.sampled_from(sorted(MANAGED_USER_ATTRIBUTES)), st.text(min_size=1, max_size=3))


@given(st.dictionaries(_names, _values, max_size=12), _managed, st.data())
def test_put_body_keeps_the_unmanaged_and_sends_nothing_read_only(live: dict[str, Any], after: dict[str, Any],
                                                                  data: st.DataObject) -> None:
    """For any live user, wanted form and cleared attributes: no read-only property (nested ones too), no
    cleared attribute; every unmanaged live attribute kept unchanged (less its read-only parts); the
    managed ones as wanted; the population as its id only."""
    cleared = data.draw(st.sets(st.sampled_from(sorted(MANAGED_USER_ATTRIBUTES))))
    body = put_body(live, after, cleared)
    assert not (set(body) & NOT_SENT_BACK) and not (set(body) & cleared)
    for key, parts in READ_ONLY_PARTS.items():
        assert not (isinstance(body.get(key), dict) and set(body[key]) & parts)
    for key, value in live.items():
        if key in NOT_SENT_BACK or key in MANAGED_USER_ATTRIBUTES or key == "population":
            continue
        if key in READ_ONLY_PARTS and isinstance(value, dict):
            value = {part: v for part, v in value.items() if part not in READ_ONLY_PARTS[key]} or None
        assert body.get(key) == value
    assert {key: body[key] for key in MANAGED_USER_ATTRIBUTES if key in body} == {
        key: value for key, value in after.items() if key not in cleared}
    population = live.get("population")
    expected = {"id": population["id"]} if isinstance(population, dict) and isinstance(population.get("id"), str) else None
    assert body.get("population") == expected


def test_a_put_body_from_a_full_live_user_validates() -> None:
    """A live user as the Platform API answers it (read-only parts, HAL links, custom attributes) gives a
    PUT body the document's User accepts, without the cleared title."""
    live = {"_links": {"self": {"href": "https://api.example.com/v1/environments/e/users/u"}}, "id": "u",
            "environment": {"id": "e"}, "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-02T00:00:00Z",
            "enabled": True, "emailVerified": False, "lastSignOn": {"at": "2026-01-02T00:00:00Z"},
            "memberOfGroupIDs": ["g"], "population": {"id": "p"}, "username": "ada", "email": "ada@example.com",
            "title": "Director", "identityProvider": {"type": "PING_ONE"}, "mfaEnabled": True,
            "account": {"canAuthenticate": True, "status": "LOCKED", "lockedAt": "2026-01-02T00:00:00Z",
                        "secondsUntilUnlock": 30},
            "lifecycle": {"status": "ACCOUNT_OK"}, "badgeNumber": "B-1"}
    body = put_body(live, {"username": "ada", "email": "ada@example.com"}, ["title"])
    validate_request("PUT", "/environments/e/users/u", body)
    assert body == {"username": "ada", "email": "ada@example.com", "mfaEnabled": True, "population": {"id": "p"},
                    "account": {"canAuthenticate": True, "status": "LOCKED"}, "lifecycle": {"status": "ACCOUNT_OK"},
                    "badgeNumber": "B-1"}
