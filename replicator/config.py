"""Configuration: typed, frozen, validated before any I/O.

Precedence: built-in defaults < TOML file (`--config`) < environment (`SCIMREP_*`) < command-line flags.
Every leaf setting has one name in each layer, derived from its dotted path:
`source.url` is `[source] url = ...` in TOML, `SCIMREP_SOURCE_URL` in the environment and
`--source-url` on the command line. A secret may also come from a file: `SCIMREP_SOURCE_TOKEN_FILE`.
Unknown keys (and unknown SCIMREP_ variables) and bad values fail with the field's name. Secrets never
appear in `repr`. The schema (the settings, their types and defaults) is `replicator.config_schema`'s;
this module loads, derives and validates a configuration, and is where the house imports the schema from.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from replicator.config_origins import derived_paths, explain_invalid, paths_in, with_value
from replicator.config_schema import SECRET_FIELDS as SECRET_FIELDS
from replicator.config_schema import Config as Config
from replicator.config_schema import MappingConfig as MappingConfig
from replicator.config_schema import MappingSection as MappingSection
from replicator.config_schema import ScopeConfig as ScopeConfig
from replicator.config_schema import SideConfig as SideConfig
from replicator.config_schema import SyncConfig as SyncConfig
from replicator.errors import ConfigError

ENV_PREFIX = "SCIMREP_"


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
