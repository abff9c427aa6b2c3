"""The error answers of the emulated Platform API: :class:`PlatformProblem` (raised by handlers and
the directory) and its body ``{id, code, message, details: [{code, target, message}]}`` (doc/spec
P1Error). Handlers of the SCIM API turn the same problem into a SCIM error body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class PlatformProblem(Exception):
    """An error answer: HTTP ``status``, PingOne ``code``, a message, optional details and headers."""

    status: int
    code: str
    message: str
    details: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The P1Error body of this problem, with a fresh id."""
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def not_found(what: str = "resource") -> PlatformProblem:
    return PlatformProblem(404, "NOT_FOUND", f"The request could not be completed. The requested {what} was "
                           "not found.")


def invalid_data(target: str, message: str, detail_code: str = "INVALID_VALUE") -> PlatformProblem:
    """400 INVALID_DATA naming the offending attribute."""
    return PlatformProblem(400, "INVALID_DATA", "The request could not be completed. One or more validation "
                           "errors were in the request.",
                           [{"code": detail_code, "target": target, "message": message}])


def conflict(target: str, message: str) -> PlatformProblem:
    """409: a value that must be unique is taken."""
    return PlatformProblem(409, "UNIQUENESS_VIOLATION", "The request could not be completed. A resource with "
                           "the given values already exists.",
                           [{"code": "UNIQUENESS_VIOLATION", "target": target, "message": message}])


def access_failed(message: str) -> PlatformProblem:
    """401: no valid token for this environment."""
    return PlatformProblem(401, "ACCESS_FAILED", message, headers={"WWW-Authenticate": "Bearer"})
