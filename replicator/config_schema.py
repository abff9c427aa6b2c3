"""The configuration's schema: every setting, its type and its default, as frozen msgspec structs
(`Config` and its sections). Secrets (SECRET_FIELDS) never appear in a side's `repr`. Loading, the
setting names of each layer and validation are `replicator.config`'s, which re-exports this schema as
the one the house imports."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SECRET_FIELDS = {"token", "password", "client_secret"}


class SideConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How to reach one SCIM server."""

    url: str = ""
    auth: Literal["auto", "none", "bearer", "basic", "oauth"] = "auto"
    token: str | None = None
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    token_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    scope: str | None = None
    timeout: float = 30.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    page_size: int = 500
    paging: Literal["auto", "index", "cursor"] = "auto"
    rate_limit: float | None = None
    retry_attempts: int = 8
    retry_timeout: float = 300.0
    # what the side is: a SCIM 2.0 server (`url`), or a PingOne environment read and written through
    # its Platform API (groups, memberships, nesting, populations live only there)
    kind: Literal["scim", "pingone"] = "scim"
    # PingOne: region + environment id derive `url` and `token_url` (and, for kind = "pingone", the
    # Platform API) when those are not given; each base URL without the environment id
    pingone_region: Literal["com", "ca", "eu", "asia", "com.au", "sg"] | None = None
    pingone_environment: str | None = None
    api_url: str | None = None  # default https://api.pingone.<region>/v1
    auth_url: str | None = None  # default https://auth.pingone.<region>
    scim_url: str | None = None  # default https://scim-api.pingone.<region>
    # PingOne populations: source population name -> destination population name (same name when not
    # listed); a user whose population the destination lacks goes to `default_population` (its default
    # population when not given)
    populations: dict[str, str] = msgspec.field(default_factory=dict)
    default_population: str | None = None

    def __repr__(self) -> str:
        shown = {f: getattr(self, f) for f in self.__struct_fields__}
        for name in SECRET_FIELDS:
            if shown[name] is not None:
                shown[name] = "***"
        return "SideConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    __str__ = __repr__

    @property
    def auth_mode(self) -> str:
        if self.auth != "auto":
            return self.auth
        if self.client_id or self.client_secret:
            return "oauth"
        if self.token:
            return "bearer"
        if self.username:
            return "basic"
        return "none"


class SyncConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What replication may do, and how it matches and handles objects."""

    create: bool = True
    update: bool = True
    delete: bool = True
    disable: bool = True
    remove_action: Literal["delete", "disable"] = "delete"
    groups: bool = True
    membership: Literal["merge", "overwrite"] = "merge"
    member_chunk: int = 100
    max_delete_count: int = 100
    max_delete_percent: float = 25.0
    allow_mass_delete: bool = False
    allow_member_removals: bool = False
    # create without proof of absence (a destination that can neither be listed nor searched): only for
    # a destination known to be empty, for one run (--assume-empty-destination)
    assume_empty_destination: bool = False
    max_resource_bytes: int = 1_048_576
    bulk: Literal["auto", "off"] = "auto"
    bulk_size: int = 100
    user_match_attribute: str = "userName"
    user_match_filter: str = 'userName eq "%s"'
    group_match_attribute: str = "displayName"
    group_match_filter: str = 'displayName eq "%s"'


class ScopeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Which source objects replicate (see replicator.pipeline.scope)."""

    user_filter: str | None = None
    user_groups: list[str] = []
    nested: bool = True
    group_names: list[str] = []
    group_filter: str | None = None


class MappingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How one resource type's attributes are reshaped (see replicator.pipeline.mapping)."""

    include: list[str] = []
    exclude: list[str] = []
    rename: dict[str, str] = {}
    constants: dict[str, Any] = {}
    schema_urns: dict[str, str] = {}


class MappingSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    users: MappingConfig = MappingConfig()
    groups: MappingConfig = MappingConfig()


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The whole configuration."""

    source: SideConfig = SideConfig()
    destination: SideConfig = SideConfig()
    sync: SyncConfig = SyncConfig()
    scope: ScopeConfig = ScopeConfig()
    mapping: MappingSection = MappingSection()
    state: str = "scim-replicator.db"
    concurrency: int = 16
    min_concurrency: int = 2
    interval: float = 60.0
    interval_jitter: float = 0.1
    full_interval: float = 86400.0
    listen: str = "127.0.0.1:8080"
    pair: str | None = None  # the `pair` label of every metric (none: both URLs' host and path)
    grace: float = 30.0
    unhealthy_after: int = 3  # cycles in a row unable to reach a server (or refused credentials): unhealthy
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    progress_interval: float = 30.0  # seconds between status lines off a terminal; 0: no progress output
