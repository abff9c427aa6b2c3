"""The filter language of PingOne lists, as far as the documents show it: ``attr eq "v"`` (also
``ne``, ``sw``, ``ew``, ``co``; operators in any case), ``memberOfGroups[id eq "g"]``, ``and`` binding
tighter than ``or``, and parentheses. Used for ``users?filter=``, ``groups?filter=``, dynamic groups'
``userFilter`` and (through an attribute map) SCIM filters.

:func:`parse_filter` turns text into a tree, raising :class:`FilterError` on anything else;
:func:`matches` evaluates a tree against one resource (a plain dict with dotted paths).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[()\[\]])|(?P<word>[^\s()\[\]"]+))')
OPERATORS = ("eq", "ne", "sw", "ew", "co")


class FilterError(ValueError):
    """A filter this emulator (and, as far as documented, PingOne) does not understand."""


@dataclass(frozen=True)
class Comparison:
    """``path op value``: ``path`` dotted, lower-cased ``op``."""

    path: str
    op: str
    value: str | bool | int


@dataclass(frozen=True)
class MemberOf:
    """``memberOfGroups[id eq "group"]``."""

    group_id: str


@dataclass(frozen=True)
class Junction:
    """``left and right`` / ``left or right``."""

    op: str
    left: Node
    right: Node


Node = Comparison | MemberOf | Junction


def parse_filter(text: str, attribute_map: Mapping[str, str] | None = None) -> Node:
    """Parse ``text``; with ``attribute_map`` (lower-cased name -> Platform path) names are translated
    and one outside the map is an error (a SCIM filter)."""
    parser = _Parser(_tokens(text), attribute_map)
    node = parser.expression()
    if parser.position != len(parser.tokens):
        raise FilterError(f"unexpected {parser.tokens[parser.position]!r} in filter {text!r}")
    return node


def matches(node: Node, resource: Mapping[str, object], member_of: Callable[[str], bool],
            ignore_case: frozenset[str] = frozenset()) -> bool:
    """Whether ``resource`` satisfies ``node``; ``member_of(group_id)`` answers memberOfGroups terms;
    string comparisons on the paths in ``ignore_case`` ignore case."""
    if isinstance(node, Junction):
        left = matches(node.left, resource, member_of, ignore_case)
        if node.op == "and":
            return left and matches(node.right, resource, member_of, ignore_case)
        return left or matches(node.right, resource, member_of, ignore_case)
    if isinstance(node, MemberOf):
        return member_of(node.group_id)
    actual = _value_at(resource, node.path)
    expected = node.value
    if isinstance(actual, str) and isinstance(expected, str) and node.path in ignore_case:
        actual, expected = actual.casefold(), expected.casefold()
    if node.op == "eq":
        return actual == expected
    if node.op == "ne":
        return actual != expected
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    if node.op == "sw":
        return actual.startswith(expected)
    if node.op == "ew":
        return actual.endswith(expected)
    return expected in actual


def _value_at(resource: Mapping[str, object], path: str) -> object:
    value: object = resource
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            if text[position:].strip():
                raise FilterError(f"cannot read filter {text!r} at {position}")
            break
        tokens.append(found.group(found.lastgroup or "word"))
        position = found.end()
    return tokens


class _Parser:
    """Recursive descent over the tokens: or-expression of and-expressions of terms."""

    def __init__(self, tokens: list[str], attribute_map: Mapping[str, str] | None) -> None:
        self.tokens = tokens
        self.position = 0
        self.attribute_map = attribute_map

    def expression(self) -> Node:
        node = self.conjunction()
        while self._peek_word("or"):
            self.position += 1
            node = Junction("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.term()
        while self._peek_word("and"):
            self.position += 1
            node = Junction("and", node, self.term())
        return node

    def term(self) -> Node:
        token = self._take()
        if token == "(":
            node = self.expression()
            self._expect(")")
            return node
        if token.lower() == "memberofgroups" and self._peek() == "[":
            self._take()
            if self._take().lower() != "id" or self._take().lower() != "eq":
                raise FilterError('memberOfGroups takes only [id eq "<group id>"]')
            group_id = self._value()
            self._expect("]")
            if not isinstance(group_id, str):
                raise FilterError("memberOfGroups[id eq ...] needs a quoted group id")
            return MemberOf(group_id)
        op = self._take().lower()
        if op not in OPERATORS:
            raise FilterError(f"unsupported operator {op!r} (supported: {', '.join(OPERATORS)})")
        return Comparison(self._path(token), op, self._value())

    def _path(self, name: str) -> str:
        if self.attribute_map is None:
            return name
        if name.lower() not in self.attribute_map:
            raise FilterError(f"unsupported filter attribute {name!r}")
        return self.attribute_map[name.lower()]

    def _value(self) -> str | bool | int:
        token = self._take()
        if token.startswith('"'):
            return re.sub(r"\\(.)", r"\1", token[1:-1])
        if token.lower() in ("true", "false"):
            return token.lower() == "true"
        if token.isdigit():
            return int(token)
        raise FilterError(f"unsupported filter value {token!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _peek_word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.lower() == word

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise FilterError("filter ends too early")
        self.position += 1
        return token

    def _expect(self, token: str) -> None:
        if self._take() != token:
            raise FilterError(f"expected {token!r} in filter")
