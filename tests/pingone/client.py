"""A small HTTP client for the emulator's tests: fetches a token, sends Platform and SCIM requests, and
checks every Platform request body it sends and every Platform answer it gets against the OpenAPI
document (tests/pingone/shapes.py), so a shape the emulator gets wrong fails the test that saw it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import aiohttp

from replicator.testing.pingone import Environment, PingOneEmulator
from tests.pingone.shapes import validate_request, validate_response


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class PingOneTestClient:
    """Requests to one environment of an emulator, with its token."""

    def __init__(self, session: aiohttp.ClientSession, emulator: PingOneEmulator, environment: Environment) -> None:
        self.session = session
        self.emulator = emulator
        self.environment = environment
        self.token: str | None = None

    async def fetch_token(self, secret: str | None = None, *, post: bool = False) -> Answer:
        """POST {auth_url}/{env}/as/token by Client Secret Basic (or Post); keep the token it gives."""
        env = self.environment
        secret = env.client_secret if secret is None else secret
        form = {"grant_type": "client_credentials"}
        headers = {}
        if post:
            form.update(client_id=env.client_id, client_secret=secret)
        else:
            basic = base64.b64encode(f"{env.client_id}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        async with self.session.post(f"{self.emulator.auth_url}/{env.id}/as/token", data=form,
                                     headers=headers) as response:
            answer = Answer(response.status, await response.json(), dict(response.headers))
        if answer.status == 200:
            self.token = answer.body["access_token"]
        return answer

    async def platform(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
                       url: str | None = None, check_request: bool = True) -> Answer:
        """A Platform request to ``{api_url}/environments/{env}/{path}`` (or the full ``url``, a next link)."""
        url = url or f"{self.emulator.api_url}/environments/{self.environment.id}/{path}"
        spec_path = "/" + url.split("/v1/", 1)[1].split("?", 1)[0]
        if body is not None and check_request:
            validate_request(method, spec_path, body)
        answer = await self._send(method, url, body, params)
        validate_response(method, spec_path, answer.status, answer.body)
        return answer

    async def scim(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
                   raw: bytes | None = None) -> Answer:
        """A SCIM request to ``{scim_url}/environments/{env}/v2/{path}`` (not in the OpenAPI document)."""
        url = f"{self.emulator.scim_url}/environments/{self.environment.id}/v2/{path}"
        return await self._send(method, url, body, params, raw)

    async def _send(self, method: str, url: str, body: Any, params: dict[str, str] | None,
                    raw: bytes | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, url, json=body, data=raw, params=params,
                                        headers=headers) as response:
            text = await response.text()
            parsed = await response.json(content_type=None) if text else None
            return Answer(response.status, parsed, dict(response.headers))
