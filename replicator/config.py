"""Configuration: typed, frozen, validated before any I/O.

Precedence: built-in defaults < TOML file (`--config`) < environment (`SCIMREP_*`) < command-line flags.
Every leaf setting has one name in each layer, derived from its dotted path:
`source.url` is `[source] url = ...` in TOML, `SCIMREP_SOURCE_URL` in the environment and
`--source-url` on the command line. A secret may also come from a file: `SCIMREP_SOURCE_TOKEN_FILE`.
Unknown keys (and unknown SCIMREP_ variables) and bad values fail with the field's name. Secrets never
appear in `repr`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from replicator.config_origins import derived_paths, explain_invalid, paths_in, with_value
from replicator.errors import ConfigError

SECRET_FIELDS = {"token", "password", "client_secret"}
ENV_PREFIX = "SCIMREP_"


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
    grace: float = 30.0
    unhealthy_after: int = 3  # cycles in a row unable to reach a server (or refused credentials): unhealthy
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"


def iter_leaves(struct: type[msgspec.Struct] = Config, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, type annotation) of every leaf setting that environment and flags can carry:
    scalars, and lists of strings (comma-separated). Tables (mapping renames, constants) are TOML-only."""
    for info in msgspec.structs.fields(struct):
        path = f"{prefix}{info.name}"
        if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct):
            yield from iter_leaves(info.type, path + ".")
        elif typing.get_origin(info.type) is not dict:
            yield path, info.type


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _split_lists(tree: dict[str, Any]) -> None:
    """Comma-separated strings from the environment or flags become lists where a list is expected."""
    for path, annotation in iter_leaves():
        if not _is_list(annotation):
            continue
        parent: Any = tree
        *parents, leaf = path.split(".")
        for part in parents:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(leaf), str):
            parent[leaf] = [item.strip() for item in parent[leaf].split(",") if item.strip()]


def env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


def flag_name(path: str) -> str:
    return "--" + path.replace(".", "-").replace("_", "-")


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def read_environment(environ: Mapping[str, str], origins: dict[str, str] | None = None) -> dict[str, Any]:
    """Settings from SCIMREP_* variables. A secret may instead come from the file SCIMREP_*_FILE names,
    or from a container secret `/run/secrets/scimrep_<side>_<field>` (folder: SCIMREP_SECRETS_DIR).
    `origins` receives where each setting came from (`env NAME`, `file PATH`)."""
    origins = {} if origins is None else origins
    tree: dict[str, Any] = {}
    secrets_dir = environ.get(ENV_PREFIX + "SECRETS_DIR", "/run/secrets")
    for path, _ in iter_leaves():
        name = env_name(path)
        if name in environ:
            _set(tree, path, environ[name])
            origins[path] = f"env {name}"
            continue
        if path.rsplit(".", 1)[-1] not in SECRET_FIELDS:
            continue
        candidates = [(f"{name}_FILE", environ[f"{name}_FILE"])] if f"{name}_FILE" in environ else []
        container_secret = os.path.join(secrets_dir, name.lower())
        if not candidates and os.path.isfile(container_secret):
            candidates = [(container_secret, container_secret)]
        for origin, file_path in candidates:
            try:
                with open(file_path, encoding="utf-8") as handle:
                    _set(tree, path, handle.read().strip())
                origins[path] = f"env {origin}" if origin.startswith(ENV_PREFIX) else f"file {origin}"
            except OSError as exc:
                raise ConfigError(f"{origin}: cannot read {file_path}: {exc.strerror}") from None
    _refuse_unknown_variables(environ)
    return tree


def _refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """A misspelled SCIMREP_ variable would leave its setting at the default without a word."""
    known = {ENV_PREFIX + "CONFIG", ENV_PREFIX + "SECRETS_DIR"}
    for path, _ in iter_leaves():
        known.add(env_name(path))
        if path.rsplit(".", 1)[-1] in SECRET_FIELDS:
            known.add(env_name(path) + "_FILE")
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            likely = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {likely[0]}?)" if likely else ""
            raise ConfigError(f"unknown environment variable {name}{hint}")


def apply_presets(config: Config) -> Config:
    """Derive PingOne URLs from region + environment id where the URLs were not given."""
    sides = {}
    for side in ("source", "destination"):
        cfg: SideConfig = getattr(config, side)
        if cfg.kind == "pingone" and not cfg.pingone_environment:
            raise ConfigError(f"{side}.kind = \"pingone\" needs {side}.pingone_environment (the environment id)")
        if cfg.pingone_environment and (cfg.pingone_region or cfg.kind == "pingone"):
            sides[side] = pingone_urls(cfg)
        elif cfg.pingone_region or cfg.pingone_environment:
            raise ConfigError(f"{side}.pingone_region and {side}.pingone_environment go together")
    return msgspec.structs.replace(config, **sides) if sides else config


def pingone_urls(cfg: SideConfig) -> SideConfig:
    """A PingOne side's URLs from its region (com when not given) and environment id, where not set:
    the Platform API, the token endpoint, and SCIM (`url`)."""
    env, region = cfg.pingone_environment, cfg.pingone_region or "com"
    api_url = (cfg.api_url or f"https://api.pingone.{region}/v1").rstrip("/")
    auth_url = (cfg.auth_url or f"https://auth.pingone.{region}").rstrip("/")
    scim_url = (cfg.scim_url or f"https://scim-api.pingone.{region}").rstrip("/")
    return msgspec.structs.replace(
        cfg, api_url=api_url, auth_url=auth_url, scim_url=scim_url,
        url=cfg.url or f"{scim_url}/environments/{env}/v2",
        token_url=cfg.token_url or f"{auth_url}/{env}/as/token",
        auth="oauth" if cfg.kind == "pingone" and cfg.auth == "auto" else cfg.auth,
    )


def load_config(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    need_endpoints: bool = True,
) -> Config:
    """Merge defaults < TOML < environment < overrides (dotted paths from flags) and validate."""
    return load_config_traced(config_file=config_file, environ=environ, overrides=overrides,
                              need_endpoints=need_endpoints)[0]


def load_config_traced(
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_origins: Mapping[str, str] | None = None,
    need_endpoints: bool = True,
) -> tuple[Config, dict[str, str]]:
    """load_config, and where each setting not at its default came from: `file PATH`, `env NAME`,
    `flag --name` (or what override_origins says), `derived` (a PingOne URL). Errors name the setting,
    its value (never a secret's) and its origin."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    origins: dict[str, str] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        tree = _merge(tree, read_toml(config_file))
        origins.update(dict.fromkeys(paths_in(tree, Config), f"file {config_file}"))
    tree = _merge(tree, read_environment(environ, origins))
    for path, value in (overrides or {}).items():
        if value is not None:
            _set(tree, path, value)
            origins[path] = (override_origins or {}).get(path) or f"flag {flag_name(path)}"
    _split_lists(tree)
    try:
        config = msgspec.convert(tree, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {explain_invalid(str(exc), tree, origins, Config, SECRET_FIELDS)}") from None
    try:
        presets = apply_presets(config)
        validate(presets, need_endpoints=need_endpoints)
    except ConfigError as exc:
        raise ConfigError(with_value(str(exc), config, origins, SECRET_FIELDS)) from None
    origins.update(dict.fromkeys(derived_paths(config, presets), "derived"))
    return presets, origins


def validate(config: Config, *, need_endpoints: bool = True) -> None:
    """Checks msgspec types cannot express; raises ConfigError naming the field."""
    if need_endpoints:
        for side in ("source", "destination"):
            validate_side(side, getattr(config, side))
        if config.source.url.rstrip("/") == config.destination.url.rstrip("/"):
            raise ConfigError("source.url and destination.url are the same server")
    if not 1 <= config.concurrency <= 1024:
        raise ConfigError("concurrency must be between 1 and 1024")
    if not 1 <= config.min_concurrency <= config.concurrency:
        raise ConfigError("min_concurrency must be between 1 and concurrency")
    for name in ("interval", "full_interval"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive (seconds)")
    if not 0 <= config.interval_jitter <= 1:
        raise ConfigError("interval_jitter must be between 0 and 1 (a fraction of interval)")
    if config.grace < 0:
        raise ConfigError("grace must be >= 0 seconds")
    if config.unhealthy_after < 1:
        raise ConfigError("unhealthy_after must be at least 1 (cycles)")
    host, _, port = config.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("listen must be HOST:PORT")
    if config.sync.member_chunk < 1:
        raise ConfigError("sync.member_chunk must be at least 1")
    if config.sync.bulk_size < 1:
        raise ConfigError("sync.bulk_size must be at least 1")
    if config.sync.max_delete_count < 0:
        raise ConfigError("sync.max_delete_count must be >= 0")
    if not 0 <= config.sync.max_delete_percent <= 100:
        raise ConfigError("sync.max_delete_percent must be within 0..100")
    for name in ("user_match_filter", "group_match_filter"):
        if "%s" not in getattr(config.sync, name):
            raise ConfigError(f"sync.{name} must contain %s where the value goes")
    if not config.state:
        raise ConfigError("state must name a file")
    compile_rules(config)  # filters parse, mapping paths are well formed


def compile_rules(config: Config) -> tuple[Any, dict[str, Any]]:
    """The scope and the per-kind mapping rules of a configuration (ConfigError names a bad field)."""
    from replicator.pipeline.mapping import make_rules
    from replicator.pipeline.scope import make_scope

    scope = make_scope(
        user_filter=config.scope.user_filter, user_groups=config.scope.user_groups, nested=config.scope.nested,
        group_names=config.scope.group_names, group_filter=config.scope.group_filter,
    )
    rules = {
        kind: make_rules(include=m.include, exclude=m.exclude, rename=m.rename, constants=m.constants,
                         schema_urns=m.schema_urns, where=f"mapping.{name}")
        for kind, name, m in (("User", "users", config.mapping.users), ("Group", "groups", config.mapping.groups))
    }
    return scope, rules


def validate_side(side: str, cfg: SideConfig) -> None:
    if not cfg.url:
        raise ConfigError(f"{side}.url is required (flag {flag_name(side + '.url')}, env {env_name(side + '.url')})")
    if not cfg.url.startswith(("http://", "https://")):
        raise ConfigError(f"{side}.url must start with http:// or https://")
    for name in ("url", "token_url", "api_url", "auth_url", "scim_url"):
        value = getattr(cfg, name)
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{side}.{name} must start with http:// or https://")
        if value and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            # (the message does not repeat the URL: the part before @ may be a password)
            raise ConfigError(f"{side}.{name} must not carry user:password@ (use {side}.username and "
                              f"{side}.password, or a token)")
    if not 1 <= cfg.page_size <= 10000:
        raise ConfigError(f"{side}.page_size must be between 1 and 10000")
    if cfg.timeout <= 0:
        raise ConfigError(f"{side}.timeout must be positive")
    if cfg.rate_limit is not None and cfg.rate_limit <= 0:
        raise ConfigError(f"{side}.rate_limit must be positive (requests per second)")
    if cfg.retry_attempts < 1:
        raise ConfigError(f"{side}.retry_attempts must be at least 1")
    mode = cfg.auth_mode
    required = {
        "bearer": ("token",),
        "basic": ("username", "password"),
        "oauth": ("client_id", "client_secret", "token_url"),
    }.get(mode, ())
    for name in required:
        if not getattr(cfg, name):
            raise ConfigError(f"{side}.{name} is required for {mode} authentication")
