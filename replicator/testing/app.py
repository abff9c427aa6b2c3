"""In-memory SCIM 2.0 server for the demo, fault-injection tests and benchmarks: the aiohttp app.

:class:`MemoryScimServer` serves on ``aiohttp.web``:

* ``/v2/Users`` and ``/v2/Groups`` (create, read, replace, patch, delete, list, ``.search``),
  ``/v2/Bulk`` and ``/v2/ServiceProviderConfig``, answering ``application/scim+json``;
* the subset of RFC 7643/7644 a replicator exercises: index paging, RFC 9865 cursor paging, ``eq``
  filters joined by ``and``, PATCH with plain, dotted, extension-URN and value-filter paths, and SCIM
  error bodies (RFC 7644 section 3.12);
* fault injection (:class:`~replicator.testing.options.Faults`) and the quirks of real servers
  (:class:`~replicator.testing.options.Quirks`).

This module owns the routes, the middleware (request log, faults, bearer authentication) and start/stop;
storage is :mod:`replicator.testing.resources`, PATCH :mod:`~replicator.testing.patch`, listing
:mod:`~replicator.testing.listing`, Bulk :mod:`~replicator.testing.bulk`. Not supported: sorting, ETags,
``/Schemas``, ``/ResourceTypes``, ``attributes``/``excludedAttributes``.

Seed and mutate resources through HTTP or :meth:`MemoryScimServer.add_user` /
:meth:`MemoryScimServer.add_group`: they keep the uniqueness index that backs the 409 checks and
``userName``/``displayName`` ``eq`` lookups.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from replicator.testing.bulk import bulk_response
from replicator.testing.faults import FaultInjector, drop_connection
from replicator.testing.kept import kept_by
from replicator.testing.listing import list_response
from replicator.testing.member_quirks import answer_members, check_members, patched_members, typed_by_id
from replicator.testing.options import Faults, Quirks
from replicator.testing.patch import replacing_complex_whole
from replicator.testing.protocol import (
    BASE_PATH,
    GROUP,
    SERVICE_PROVIDER_CONFIG_SCHEMA,
    USER,
    ResourceKind,
    ScimProblem,
    error_response,
    json_response,
    read_json_object,
)
from replicator.testing.resources import ResourceStore


class MemoryScimServer:
    """A SCIM 2.0 service provider keeping Users and Groups in dicts."""

    def __init__(
        self, *, bearer_token: str | None = None, faults: Faults | None = None, quirks: Quirks | None = None
    ) -> None:
        self.bearer_token = bearer_token
        self._faults = FaultInjector(faults if faults is not None else Faults())  # (seeds the random stream)
        self.quirks = quirks if quirks is not None else Quirks()
        self.bulk_bodies: list[dict[str, Any]] | None = None  # a list: keep every Bulk request's body
        self.store = ResourceStore()
        self._list_requests = self._faults.list_requests  # list requests by kind (Faults.fail_list_page)
        self.request_log: list[tuple[str, str]] = []
        self.request_times: list[float] = []  # time.monotonic() of each request, in order
        self.base_url: str | None = None
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- public API

    def counts(self) -> collections.Counter[str]:
        """Requests received so far, by HTTP method."""
        return collections.Counter(method for method, _ in self.request_log)

    def add_user(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a User without HTTP (same rules as POST); return the stored resource."""
        return self.store.add(USER, resource, self.base_url or BASE_PATH, unique_groups=self.quirks.unique_group_names)

    def add_group(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a Group without HTTP (same rules as POST); return the stored resource."""
        return self.store.add(GROUP, resource, self.base_url or BASE_PATH, unique_groups=self.quirks.unique_group_names)

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """Stored Users by id (tests edit them in place, bypassing the uniqueness index)."""
        return self.store.users

    @users.setter
    def users(self, users: dict[str, dict[str, Any]]) -> None:
        self.store.users = users

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        """Stored Groups by id."""
        return self.store.groups

    @groups.setter
    def groups(self, groups: dict[str, dict[str, Any]]) -> None:
        self.store.groups = groups

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """New faults from now on, their random stream re-seeded from ``faults.seed``."""
        self._faults.use(faults)

    def make_app(self) -> web.Application:
        @web.middleware
        async def scim_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._around_handler(request, handler)

        async def service_provider_config(request: web.Request) -> web.Response:
            return json_response(200, service_provider_config_body(request_base(request, self.base_url),
                                                                   self.quirks, self.bearer_token is not None))

        app = web.Application(middlewares=[scim_middleware])
        app.router.add_get(f"{BASE_PATH}/ServiceProviderConfig", service_provider_config)
        app.router.add_post(f"{BASE_PATH}/Bulk", self._bulk)
        for kind in (USER, GROUP):
            add_resource_routes(app, self, kind)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); return the base URL ending in /v2."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{bound_port}{BASE_PATH}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- plumbing

    async def _around_handler(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log, inject faults, check authentication, then run the handler."""
        if request.path.startswith("/_admin/"):  # control routes a test harness may add
            return await handler(request)
        self.request_log.append((request.method, request.path))
        self.request_times.append(time.monotonic())
        try:
            dropped = await self._faults.before_request(request)
            if dropped is not None:
                return dropped
            check_bearer(request, self.bearer_token)
            if request.method in ("POST", "PUT", "PATCH") and not request.path.endswith("/Bulk"):
                self._faults.refuse_values((await request.read()).decode("utf-8", "replace"),
                                           request.headers.get("Authorization", ""))
            response = await handler(request)
            if request.method in ("POST", "PUT", "PATCH", "DELETE") and self._faults.loses_write_answer():
                return drop_connection(request)
            return response
        except ScimProblem as error:
            return error_response(error)
        except web.HTTPException as exc:  # unknown route (404), wrong method (405)
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(ScimProblem(exc.status, exc.reason, headers=headers))

    def _list(self, query: Mapping[str, str], kind: ResourceKind) -> web.Response:
        return list_response(self.store, kind, query, self.quirks, self._faults)

    async def _bulk(self, request: web.Request) -> web.Response:
        return await bulk_response(request, self.store, self.quirks, self._faults,
                                   request_base(request, self.base_url), self.bulk_bodies)


def add_resource_routes(app: web.Application, server: MemoryScimServer, kind: ResourceKind) -> None:
    """The routes of one kind: its collection (list, ``.search``, create) and each resource (read,
    replace, patch, delete), served from ``server``'s store as its quirks say. Lists go through
    ``server._list``, looked up per request (tests replace it on the instance)."""
    collection = f"{BASE_PATH}/{kind.endpoint}"
    one = f"{collection}/{{id}}"
    store = server.store

    async def list_(request: web.Request) -> web.Response:
        return server._list(request.query, kind)

    async def search(request: web.Request) -> web.Response:
        # RFC 7644 3.4.3: the query of a GET, as a SearchRequest body
        body = await read_json_object(request)
        fields = ("filter", "startIndex", "count", "cursor")
        query: dict[str, str] = {key: str(body[key]) for key in fields if key in body}
        return server._list(query, kind)

    async def create(request: web.Request) -> web.Response:
        body = await read_json_object(request)
        if kind is GROUP:
            check_members(body.get("members"), server.quirks, store)
        ignores_members = server.quirks.create_ignores_members and kind is GROUP
        if ignores_members:
            body = {key: value for key, value in body.items() if key != "members"}
        body = kept_by(body, server.quirks)
        stored = store.insert(kind, body, request_base(request, server.base_url),
                              unique_groups=server.quirks.unique_group_names, numbered=server.quirks.ignores_member_type)
        stored = typed_by_id(stored, server.quirks, store) if kind is GROUP else stored
        if ignores_members:
            stored = {**stored, "members": []}
        elif kind is GROUP:
            stored = answer_members(stored, server.quirks, store)
        if not server.quirks.create_returns_body:
            return web.Response(status=201, headers={"Location": stored["meta"]["location"]})
        return json_response(201, stored, headers={"Location": stored["meta"]["location"]})

    async def get(request: web.Request) -> web.Response:
        return json_response(200, store.existing(kind, request.match_info["id"]))

    async def replace(request: web.Request) -> web.Response:
        body = kept_by(await read_json_object(request), server.quirks)
        if kind is GROUP:
            check_members(body.get("members"), server.quirks, store)
        resource = store.replace(kind, request.match_info["id"], body,
                                 unique_groups=server.quirks.unique_group_names,
                                 ignore_members=server.quirks.put_ignores_members)
        if kind is GROUP and server.quirks.ignores_member_type:
            store.save(kind, typed_by_id(resource, server.quirks, store))
        return json_response(200, resource)

    async def patch(request: web.Request) -> web.Response:
        if not server.quirks.patch_supported:
            raise ScimProblem(501, "PATCH is not supported by this server")
        body = await read_json_object(request)
        if kind is GROUP:
            check_members(patched_members(body), server.quirks, store)
        for operation in body.get("Operations") or []:
            path = operation.get("path") if isinstance(operation, dict) else None
            for prefix, (status, scim_type) in server.quirks.patch_refusals.items():
                if isinstance(path, str) and path.startswith(prefix):
                    raise ScimProblem(status, f"PATCH of {path} is not supported", scim_type)
        if server.quirks.replace_complex_whole:
            body = {**body, "Operations": replacing_complex_whole(body.get("Operations"))}
        try:
            patched = store.patch(kind, request.match_info["id"], body, unique_groups=server.quirks.unique_group_names)
        except ScimProblem as problem:
            if problem.status != 409:
                raise
            raise ScimProblem(server.quirks.patch_uniqueness_status, problem.detail, "uniqueness") from None
        if server.quirks.keeps_first_value_of or server.quirks.drops_attributes:
            patched = kept_by(patched, server.quirks)
            store.save(kind, patched)
        if kind is GROUP and server.quirks.ignores_member_type:
            store.save(kind, typed_by_id(patched, server.quirks, store))
        if server.quirks.patch_returns_resource:
            return json_response(200, patched)
        return web.Response(status=204)

    async def delete(request: web.Request) -> web.Response:
        store.delete(kind, request.match_info["id"])
        return web.Response(status=204)

    app.router.add_get(collection, list_)
    app.router.add_post(f"{collection}/.search", search)
    app.router.add_post(collection, create)
    app.router.add_get(one, get)
    app.router.add_put(one, replace)
    app.router.add_patch(one, patch)
    app.router.add_delete(one, delete)


def check_bearer(request: web.Request, bearer_token: str | None) -> None:
    """Raise a 401 problem unless the request carries ``bearer_token`` (no token: anyone may call)."""
    if bearer_token is None:
        return
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or credentials.strip() != bearer_token:
        raise ScimProblem(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


def request_base(request: web.Request, base_url: str | None) -> str:
    """The base URL resources are located under: the served one, else the request's own."""
    return base_url or f"{request.scheme}://{request.host}{BASE_PATH}"


def service_provider_config_body(base: str, quirks: Quirks, bearer: bool) -> dict[str, Any]:
    """What ``/ServiceProviderConfig`` advertises: the quirks' capabilities, and bearer authentication
    when the server asks for a token."""
    schemes = []
    if bearer:
        schemes.append(
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with a bearer token (RFC 6750)",
                "primary": True,
            }
        )
    config: dict[str, Any] = {
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": quirks.patch_supported},
        "bulk": {
            "supported": quirks.bulk_max_operations > 0,
            "maxOperations": quirks.bulk_max_operations,
            "maxPayloadSize": quirks.bulk_max_payload if quirks.bulk_max_operations else 0,
        },
        "filter": {"supported": quirks.filter_supported, "maxResults": quirks.max_page_size},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": schemes,
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }
    if quirks.cursor_paging:
        config["pagination"] = {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": quirks.max_page_size,
            "maxPageSize": quirks.max_page_size,
        }
    return config


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> AsyncIterator[tuple[MemoryScimServer, str]]:
    """``async with serve(bearer_token="t") as (server, base_url): ...``

    Keyword arguments other than ``host``/``port`` go to :class:`MemoryScimServer`.
    """
    server = MemoryScimServer(**kwargs)
    base_url = await server.start(host, port)
    try:
        yield server, base_url
    finally:
        await server.stop()
