"""What each setting means, in one place: `run --help`, `config` and README's settings table are made from it.

HELP is keyed by the setting's dotted path, with `*` for the side (`*.url` is `source.url` and
`destination.url`) and for the mapping's resource type (`mapping.*.include`). Defaults, choices and
environment names come from the schema (replicator.config), so none of them can drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from replicator.config import SECRET_FIELDS, Config, env_name, iter_leaves
from replicator.config_origins import choices

HELP = {
    "*.url": "SCIM base URL (the part before /Users); required, unless pingone_environment derives it",
    "*.auth": "how to authenticate; auto picks from the credentials given",
    "*.token": "static bearer token",
    "*.username": "HTTP basic user name",
    "*.password": "HTTP basic password",
    "*.client_id": "OAuth2 client credentials: the client id (PingOne worker app)",
    "*.client_secret": "OAuth2 client secret",
    "*.token_url": "OAuth2 token endpoint",
    "*.token_auth_method": "how the client authenticates at token_url (the app's Client Secret Basic or Post)",
    "*.scope": "OAuth2 scope to ask for",
    "*.timeout": "seconds per request",
    "*.verify_tls": "verify TLS certificates; --insecure turns it off on both sides",
    "*.ca_bundle": "CA bundle file of a private CA (none: the system's)",
    "*.page_size": "items asked per page (1..10000; servers may return fewer); groups: at most 50 and about 2 MB a page",
    "*.paging": "index, or cursor (RFC 9865); auto uses cursors when ServiceProviderConfig advertises them",
    "*.rate_limit": "most requests per second to this server (token bucket); none: learned from its 429s",
    "*.retry_attempts": "retry budget of one call: attempts",
    "*.retry_timeout": "retry budget of one call: total seconds",
    "*.kind": "scim: a SCIM 2.0 server at url; pingone: a PingOne environment through its Platform API",
    "*.pingone_region": "PingOne region; with pingone_environment it derives url and token_url",
    "*.pingone_environment": "PingOne environment id",
    "*.api_url": "PingOne Platform API base URL without the environment id (none: https://api.pingone.REGION/v1)",
    "*.auth_url": "PingOne auth base URL without the environment id (none: https://auth.pingone.REGION)",
    "*.scim_url": "PingOne SCIM base URL without the environment id (none: https://scim-api.pingone.REGION)",
    "*.populations": "PingOne: source population name = destination population name (same name when not listed)",
    "*.default_population": "PingOne: population of a user whose population the destination lacks "
                            "(none: its default population)",
    "sync.create": "create objects the destination lacks",
    "sync.update": "update objects that changed",
    "sync.delete": "delete objects gone from the source (or out of scope)",
    "sync.disable": "disable users gone from the source when remove_action is disable",
    "sync.remove_action": "what happens to a user gone from the source (or out of scope): delete, or disable "
                          "(active: false, and out of the groups we wrote); groups are deleted",
    "sync.groups": "replicate groups and memberships",
    "sync.membership": "merge: only members this tool added are ever removed; overwrite: destination members "
                       "become exactly the source's (applied by --full and on adoption)",
    "sync.member_chunk": "most member changes per request",
    "sync.max_delete_count": "mass-delete guard: most removals per kind and cycle",
    "sync.max_delete_percent": "mass-delete guard: most removals as a percentage of the tracked objects "
                               "(above 5 removals)",
    "sync.allow_mass_delete": "lift the mass-delete guard on users and groups removed (not the membership guard: "
                               "allow_member_removals); also --allow-mass-delete for one run",
    "sync.allow_member_removals": "lift the membership guard on a group losing many members (not the mass-delete "
                                  "guard); also --allow-member-removals for one run",
    "sync.assume_empty_destination": "create objects a destination without search and without a complete listing "
                                     "cannot show absent (only for an empty destination); also "
                                     "--assume-empty-destination for one run",
    "sync.max_resource_bytes": "a source object larger than this (members not counted) is refused and recorded",
    "sync.bulk": "use SCIM Bulk when the destination advertises it (off: never)",
    "sync.bulk_size": "most operations per Bulk request (and the server's maxOperations / maxPayloadSize)",
    "sync.user_match_attribute": "attribute that finds an existing destination user before creating",
    "sync.user_match_filter": "filter that finds an existing destination user (%s: the value)",
    "sync.group_match_attribute": "attribute that finds an existing destination group before creating",
    "sync.group_match_filter": "filter that finds an existing destination group (%s: the value)",
    "scope.user_filter": "SCIM filter a source user must match to replicate",
    "scope.user_groups": "replicate only the members of these source groups (by displayName, case-insensitive)",
    "scope.nested": "with user_groups: members of groups nested in them count too",
    "scope.group_names": "replicate only these groups (by displayName, case-insensitive)",
    "scope.group_filter": "SCIM filter a source group must match to replicate",
    "mapping.*.include": "source paths to keep (empty keeps all)",
    "mapping.*.exclude": "source paths to drop",
    "mapping.*.rename": "source path = destination path to move a value to",
    "mapping.*.constants": "destination path = value to set",
    "mapping.*.schema_urns": "source extension URN = destination URN to move a whole extension to",
    "state": "SQLite state file (created with mode 0600); STATE.lock beside it keeps a second run off",
    "concurrency": "destination calls in flight (1..1024)",
    "min_concurrency": "floor of the adaptive concurrency (the ceiling is concurrency)",
    "interval": "seconds between cycles in continuous mode",
    "interval_jitter": "plus up to this fraction of interval at random (0..1)",
    "full_interval": "seconds between full reconciles in continuous mode",
    "listen": "HOST:PORT of /healthz, /readyz and /metrics",
    "pair": "this pair's name: the `pair` label of every metric on /metrics, which the dashboard and alerts "
            "tell pairs apart by (none: the source's and destination's host and path, `a/v2 -> b/v2`)",
    "grace": "seconds to let calls in flight finish after SIGTERM/SIGINT",
    "unhealthy_after": "cycles in a row that could not reach a server or were refused credentials before "
                       "the daemon reports itself unhealthy",
    "log_level": "least severe log record written",
    "log_format": "auto: JSON lines unless stderr is a terminal",
    "progress_interval": "seconds between a cycle's progress lines on stderr when it is not a terminal (a "
                         "terminal gets a live display); 0: no progress output",
}


def help_key(path: str) -> str:
    """`source.url` -> `*.url`, `mapping.users.include` -> `mapping.*.include`: the key of HELP."""
    head, _, rest = path.partition(".")
    if head in ("source", "destination"):
        return "*." + rest
    if head == "mapping":
        return "mapping.*." + rest.partition(".")[2]
    return path


def help_text(path: str) -> str:
    return HELP[help_key(path)]


def iter_settings() -> Iterator[tuple[str, Any, bool]]:
    """(dotted path, annotation, TOML only) of every setting, tables included, in schema order."""
    leaves = dict(iter_leaves())
    yield from _walk(Config, "", leaves)


def _walk(struct: type[msgspec.Struct], prefix: str, leaves: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    for info in msgspec.structs.fields(struct):
        path = prefix + info.name
        if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct):
            yield from _walk(info.type, path + ".", leaves)
        else:
            yield path, info.type, path not in leaves


def default_of(path: str) -> Any:
    value: Any = Config()
    for part in path.split("."):
        value = getattr(value, part)
    return value


def value_text(value: Any) -> str:
    """A setting's value as a person writes it: true, 30, a,b, none."""
    if value is None or value == "" or value == [] or value == {}:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k} = {v}" for k, v in value.items())
    return str(value)


def is_secret(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in SECRET_FIELDS


def env_names(path: str) -> list[str]:
    """The variables that may carry a setting: a secret may also come from the file NAME_FILE names."""
    return [env_name(path), env_name(path) + "_FILE"] if is_secret(path) else [env_name(path)]


def settings_table() -> str:
    """README's settings table: one row per HELP key, naming each setting, its variables and its default."""
    rows: dict[str, list[tuple[str, Any, bool]]] = {}
    for path, annotation, toml_only in iter_settings():
        rows.setdefault(help_key(path), []).append((path, annotation, toml_only))
    lines = ["| setting | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
    for key, settings in rows.items():
        path, annotation, toml_only = settings[0]
        names = ", ".join(f"`{p}`" for p, _, _ in settings)
        variables = "(TOML only)" if toml_only else ", ".join(f"`{v}`" for p, _, _ in settings for v in env_names(p))
        default = value_text(default_of(path))
        meaning = HELP[key]
        if choices(annotation):
            meaning = "one of " + ", ".join(f"`{c}`" for c in choices(annotation)) + ": " + meaning
        lines.append(f"| {names} | {variables} | {'none' if default == 'none' else f'`{default}`'} | {meaning} |")
    return "\n".join(lines) + "\n"
