"""SCIM filter building (RFC 7644 3.4.2.2): values are quoted as JSON strings, never formatted raw."""

from __future__ import annotations

import json


def quote(value: str) -> str:
    """A SCIM string literal for `value`: `"` and `\\` escaped (JSON string rules, RFC 7644 3.4.2.2)."""
    return json.dumps(value, ensure_ascii=False)


def render(template: str, value: str) -> str:
    """Fill a filter template such as `userName eq "%s"` with a safely quoted value.

    The template's `"%s"` (quotes included) is replaced by the quoted literal; a bare `%s` too.
    """
    literal = quote(value)
    if '"%s"' in template:
        return template.replace('"%s"', literal)
    return template.replace("%s", literal)
