"""The shape checks themselves: the trimmed OpenAPI document validates the emulator's answers and
the requests it accepts, and refuses broken shapes (so a passing shape check means something)."""

from __future__ import annotations

import jsonschema
import pytest

from tests.pingone.conftest import Served
from tests.pingone.shapes import DOCUMENT, validate, validate_request, validate_response


def test_trimmed_document_carries_the_bsd_notice() -> None:
    """The trimmed copy of the OpenAPI document opens with its BSD-3-Clause notice."""
    head = DOCUMENT.read_text()[:2000]
    assert "BSD 3-Clause License" in head and "Copyright (c) 2022, Patrick Cowland" in head


async def test_broken_shapes_fail_validation(served: Served) -> None:
    """A real answer validates; without `username`, with string `details` or type NESTED it fails."""
    env = served.src.environment
    user = env.add_user("ada")
    answer = await served.src.platform("GET", "users")
    validate_response("GET", "/environments/src-env/users", 200, answer.body)
    broken = {**answer.body, "_embedded": {"users": [{k: v for k, v in answer.body["_embedded"]["users"][0].items()
                                                      if k != "username"}]}}
    with pytest.raises(jsonschema.ValidationError):
        validate_response("GET", "/environments/src-env/users", 200, broken)
    with pytest.raises(jsonschema.ValidationError):
        validate({"id": "x", "code": "NOT_FOUND", "message": "m", "details": "no"}, "#/components/schemas/P1Error")
    with pytest.raises(jsonschema.ValidationError):
        validate({"id": user["id"], "type": "NESTED"}, "#/components/schemas/GroupMembership")
    with pytest.raises(jsonschema.ValidationError):  # the document's \p{L} patterns are enforced
        validate({"username": "ada", "email": "a@example.com", "timezone": "not a zone"}, "#/components/schemas/User")


def test_request_bodies_are_checked() -> None:
    """A create without email, or a membership without id, is not a valid request body of the document."""
    with pytest.raises(jsonschema.ValidationError):
        validate_request("POST", "/environments/e/users", {"username": "ada"})
    with pytest.raises(jsonschema.ValidationError):
        validate_request("POST", "/environments/e/users/u/memberOfGroups", {"group": "g"})
    validate_request("POST", "/environments/e/groups/g/memberOfGroups", {"id": "parent"})


async def test_every_error_answer_is_a_p1_error(served: Served) -> None:
    """404, 409, 400 and 401 answers of the Platform API all validate as P1Error, with a Correlation-Id."""
    env = served.src.environment
    env.add_user("ada")
    answers = [await served.src.platform("GET", "groups/none"),
               await served.src.platform("POST", "users", {"username": "ada", "email": "x@example.com"}),
               await served.src.platform("POST", "groups", {"name": ""})]
    served.src.token = "forged"
    answers.append(await served.src.platform("GET", "populations"))
    assert [a.status for a in answers] == [404, 409, 400, 401]
    for answer in answers:
        validate(answer.body, "#/components/schemas/P1Error")
        assert answer.headers["Correlation-Id"]
