"""The PingOne emulator's aiohttp app: :class:`PingOneEmulator` serves several environments under one
root URL (token endpoint ``/{env}/as/token``, Platform API ``/v1/environments/{env}/``, SCIM API
``/scim/environments/{env}/v2``), with start()/stop() and :func:`serve_pingone`.

Its middleware gives every answer a ``Correlation-Id`` header, logs (method, path, status) per
environment, injects the faults of :class:`PingOneSwitches` (503 with an HTTP-date ``Retry-After``,
the rate cap's 429 ``REQUEST_LIMITED`` with ``Retry-After`` seconds), checks the bearer token of
Platform and SCIM requests, and turns :class:`PlatformProblem` into the API's error body.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.typedefs import Handler

from replicator.testing.pingone.auth import add_token_route, check_bearer
from replicator.testing.pingone.context import ENVIRONMENT_OF_REQUEST, SWITCHES_KEY
from replicator.testing.pingone.environment import Environment
from replicator.testing.pingone.errors import PlatformProblem, not_found
from replicator.testing.pingone.platform_groups import add_group_routes
from replicator.testing.pingone.platform_users import add_user_routes
from replicator.testing.pingone.scim import add_scim_routes, scim_error
from replicator.testing.pingone.switches import PingOneSwitches

_ENVIRONMENT_PATH = re.compile(r"^/(?:v1/environments/([^/]+)|scim/environments/([^/]+)|([^/]+)/as/token$)")


class RateCap:
    """A token bucket of ``rate`` requests per second holding one second's worth (at least one)."""

    def __init__(self) -> None:
        self._tokens = 0.0
        self._stamp: float | None = None

    def admits(self, rate: float) -> bool:
        now = time.monotonic()
        size = max(rate, 1.0)
        self._tokens = size if self._stamp is None else min(size, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self, rate: float) -> int:
        """Whole seconds until a request would be admitted."""
        return max(1, math.ceil((1 - self._tokens) / rate))


class RecordedRequest(NamedTuple):
    """One request as it arrived (for checking it against the OpenAPI document)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    content_type: str
    body: bytes


class PingOneEmulator:
    """Several PingOne environments in one process, served on one root URL. ``record=True``: every
    Platform and SCIM request is kept in ``recorded`` as it arrived."""

    def __init__(self, switches: PingOneSwitches | None = None, *, record: bool = False) -> None:
        self.switches = switches if switches is not None else PingOneSwitches()
        self.environments: dict[str, Environment] = {}
        self.root_url: str | None = None
        self.recorded: list[RecordedRequest] | None = [] if record else None
        self._rate_caps: dict[str | None, RateCap] = {}
        self._runner: web.AppRunner | None = None

    def add_environment(self, environment_id: str | None = None, *, client_id: str | None = None,
                        client_secret: str | None = None) -> Environment:
        """A new environment (id default a UUID) with a worker app's credentials (default made up)."""
        environment_id = environment_id or str(uuid.uuid4())
        if environment_id in self.environments:
            raise ValueError(f"environment {environment_id!r} exists")
        environment = Environment(environment_id, client_id or f"app-{environment_id[:8]}",
                                  client_secret or uuid.uuid4().hex,
                                  lambda: self.switches.username_case_insensitive)
        self.environments[environment_id] = environment
        return environment

    @property
    def api_url(self) -> str:
        """The ``api_url`` setting for this emulator (``{api_url}/environments/{env}/...``)."""
        return f"{self._root()}/v1"

    @property
    def auth_url(self) -> str:
        """The ``auth_url`` setting (``{auth_url}/{env}/as/token``)."""
        return self._root()

    @property
    def scim_url(self) -> str:
        """The ``scim_url`` setting (``{scim_url}/environments/{env}/v2``)."""
        return f"{self._root()}/scim"

    def make_app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._around(request, handler)

        app = web.Application(middlewares=[middleware])
        app[SWITCHES_KEY] = self.switches
        add_token_route(app)
        add_user_routes(app)
        add_group_routes(app)
        add_scim_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port); return the root URL."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        url_host = f"[{host}]" if ":" in host else host
        self.root_url = f"http://{url_host}:{runner.addresses[0][1]}"
        return self.root_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _root(self) -> str:
        if self.root_url is None:
            raise RuntimeError("the PingOne emulator is not started")
        return self.root_url

    async def _around(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        environment = self.environments.get(environment_id_of(request.path) or "")
        if self.recorded is not None and not request.path.endswith("/as/token"):
            self.recorded.append(RecordedRequest(request.method, request.path, list(request.query.items()),
                                                 request.content_type if request.body_exists else "",
                                                 await request.read()))
        try:
            response = await self._answer(request, handler, environment)
        except PlatformProblem as problem:
            response = scim_error(problem) if request.path.startswith("/scim/") else problem.response()
        if environment is not None:
            environment.request_log.append((request.method, request.path, response.status))
            environment.request_times.append(time.monotonic())
        response.headers["Correlation-Id"] = str(uuid.uuid4())
        return response

    async def _answer(self, request: web.Request, handler: Handler,
                      environment: Environment | None) -> web.StreamResponse:
        switches = self.switches
        if switches.unavailable_next > 0:
            switches.unavailable_next -= 1
            retry_at = email.utils.formatdate(time.time() + switches.unavailable_retry_after, usegmt=True)
            raise PlatformProblem(503, "SERVICE_UNAVAILABLE", "The service is unavailable.",
                                  headers={"Retry-After": retry_at})
        if switches.rate_cap:
            # doc: one IP gets its share of the licence's rate per environment
            cap = self._rate_caps.setdefault(environment.id if environment and switches.rate_cap_per_environment
                                             else None, RateCap())
            if not cap.admits(switches.rate_cap):
                raise PlatformProblem(429, "REQUEST_LIMITED", "The request could not be completed. The rate limit "
                                      "was exceeded.", headers={"Retry-After": str(cap.wait(switches.rate_cap))})
        if environment is None:
            raise not_found("environment" if environment_id_of(request.path) else "resource")
        if not request.path.endswith("/as/token"):
            check_bearer(request, environment)
        request[ENVIRONMENT_OF_REQUEST] = environment
        try:
            return await handler(request)
        except web.HTTPException as exc:  # unknown route (404), wrong method (405)
            raise PlatformProblem(exc.status, "NOT_FOUND" if exc.status == 404 else "METHOD_NOT_ALLOWED",
                                  exc.reason) from None


def environment_id_of(path: str) -> str | None:
    """The environment id a request path names (token, Platform or SCIM), if any."""
    found = _ENVIRONMENT_PATH.match(path)
    return None if found is None else next(group for group in found.groups() if group)


@contextlib.asynccontextmanager
async def serve_pingone(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> AsyncIterator[PingOneEmulator]:
    """``async with serve_pingone(switches=PingOneSwitches(...)) as emulator: ...``"""
    emulator = PingOneEmulator(**kwargs)
    await emulator.start(host, port)
    try:
        yield emulator
    finally:
        await emulator.stop()
