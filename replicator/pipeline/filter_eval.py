"""Client-side SCIM filters (RFC 7644 section 3.4.2.2): parse once, evaluate. Pure; no I/O.

This module owns the parsing and the evaluation of SCIM filter expressions against resources held
as JSON-like mappings (as read from a SCIM server), so that the replicator can decide which source
users and groups are in a replication scope without asking the source to filter. Stdlib only.

Supported syntax (keywords, operators and attribute names are case-insensitive):

- ``attrPath op value`` with op in ``eq ne co sw ew gt ge lt le``, and ``attrPath pr``;
- ``and``, ``or`` (left-associative; precedence ``not`` > ``and`` > ``or``), ``( ... )`` and
  ``not ( ... )``;
- value paths ``emails[type eq "work" and primary eq true]`` (true when some element matches; the
  filter inside the brackets may use ``and``, ``or``, ``not`` and parentheses but not another
  value path, per RFC 7644 erratum 4690), and a value path followed by a sub-attribute test,
  ``emails[type eq "work"].value ew "@example.com"`` (not in the RFC ABNF; true when some element
  matching the brackets also satisfies the test, as Microsoft Entra and scim2-server read it);
- attribute paths ``userName``, ``name.familyName``, ``emails.value``, extension-qualified
  ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`` (the URN is
  everything up to the last colon; the resource keeps the extension's attributes under the URN
  key), and core-qualified ``urn:ietf:params:scim:schemas:core:2.0:User:userName`` (``userName``);
- values: JSON strings (every JSON escape, ``\\uXXXX`` and surrogate pairs included), JSON
  numbers, ``true``, ``false``, ``null``.

Semantics (RFC 7644 3.4.2.2 and RFC 7643 2.2-2.5; where they are silent, a conservative server's):

- Strings compare case-insensitively (Unicode case folding, NFC-normalised) unless the attribute
  is in ``CASE_EXACT``; ``co``/``sw``/``ew`` apply to string values only (others never match).
- ``gt ge lt le``: numbers numerically, strings lexicographically after the same folding (so ISO
  8601 dateTimes written in one format compare chronologically); any other pairing is no match.
  A boolean or ``null`` operand for them, or a non-string operand for ``co sw ew``, is a
  FilterError at parse time (RFC 7644 has the server answer 400 for these).
- ``eq`` compares by JSON type and value: ``true`` is not ``1``, ``"1"`` is not ``1``.
- ``ne`` is the logical negation of ``eq``. For a multi-valued attribute it is therefore true when
  NO value equals (the RFC is silent; "some value differs" would let ``emails ne "x"`` match a
  user who has ``x``). An absent attribute is "not equal" to anything.
- ``attr eq null`` is true when the attribute is absent, null, ``""``, an empty list or a complex
  value without any present sub-attribute, i.e. exactly when ``attr pr`` is false (RFC 7643 2.5
  makes unassigned, null and empty array the same state); ``attr ne null`` is ``attr pr``.
- ``pr``: present means not absent, not null, not ``""``, and for a list or a complex value,
  holding at least one present element / sub-attribute.
- A multi-valued attribute matches when ANY value matches. Compared without a sub-attribute
  (``emails co "@x"``), each element's ``value`` sub-attribute is compared (or the element itself
  when it is a scalar). A complex single-valued attribute compared without a sub-attribute
  (``name eq "x"``) never equals anything (so ``name ne "x"`` is true).
- Unknown attributes are absent (no error). A core-URN-qualified path on a resource whose
  ``schemas`` list does not name that URN is absent too. A value path on a single complex value
  treats it as a one-element list.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from replicator.scim.attributes import get_ci
from replicator.scim.urns import CORE_SCHEMA_PREFIX

CASE_EXACT = frozenset({"id", "externalid", "meta.version", "password", "members.value"})
"""Lower-cased dotted core attribute names whose string values compare case-exactly.

`id`, `externalId`, `meta.version` and `password` are caseExact in RFC 7643; `members.value` holds
resource ids, which are. Everything else, extension attributes included, ignores case.
"""

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
ORDERING_OPS = frozenset({"gt", "ge", "lt", "le"})
SUBSTRING_OPS = frozenset({"co", "sw", "ew"})
MAX_DEPTH = 50
"""Deepest nesting of parentheses / brackets accepted (keeps clear of the recursion limit)."""

Value = str | int | float | bool | None


class FilterError(ValueError):
    """A filter that does not parse; the message says what is wrong and at which 0-based offset."""

    def __init__(self, reason: str, position: int, text: str = "") -> None:
        self.reason = reason
        self.position = position
        self.text = text
        super().__init__(
            f"{reason} at position {position}" + (f" in {_excerpt(text, position)}" if text else "")
        )


def _excerpt(text: str, position: int, width: int = 40) -> str:
    if len(text) <= 2 * width:
        return repr(text)
    start = max(0, position - width)
    end = min(len(text), position + width)
    return ("…" if start else "") + repr(text[start:end]) + ("…" if end < len(text) else "")


# ------------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``[urn ":"] name ["." sub]`` as written; names compare case-insensitively when evaluated."""

    name: str
    sub: str | None = None
    urn: str | None = None

    def __str__(self) -> str:
        return (
            (f"{self.urn}:" if self.urn else "") + self.name + (f".{self.sub}" if self.sub else "")
        )


@dataclass(frozen=True, slots=True)
class Compare:
    path: AttrPath
    op: str  # lower-case, one of COMPARE_OPS
    value: Value

    def __str__(self) -> str:
        return f"{self.path} {self.op} {_literal(self.value)}"


@dataclass(frozen=True, slots=True)
class Present:
    path: AttrPath

    def __str__(self) -> str:
        return f"{self.path} pr"


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self, "and")


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node

    def __str__(self) -> str:
        return _binary(self, "or")


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node

    def __str__(self) -> str:
        return f"not ({self.operand})"


@dataclass(frozen=True, slots=True)
class ValuePath:
    """``path[condition]`` or ``path[condition].sub op value``: some element satisfies both."""

    path: AttrPath
    condition: Node
    sub: Compare | Present | None = None  # its path is the sub-attribute, relative to the element

    def __str__(self) -> str:
        return f"{self.path}[{self.condition}]" + (f".{self.sub}" if self.sub is not None else "")


Node = And | Or | Not | Compare | Present | ValuePath

_PRECEDENCE = {Or: 1, And: 2}


def _binary(node: And | Or, word: str) -> str:
    mine = _PRECEDENCE[type(node)]
    left, right = str(node.left), str(node.right)
    if _PRECEDENCE.get(type(node.left), 3) < mine:
        left = f"({left})"
    if _PRECEDENCE.get(type(node.right), 3) <= mine:
        right = f"({right})"
    return f"{left} {word} {right}"


def _literal(value: Value) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------------------------------------ lexing

_WORD_START = re.compile(r"[A-Za-z$]")
_WORD = re.compile(r"[A-Za-z0-9$_:.\-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"\$?[A-Za-z][A-Za-z0-9$_\-]*")
_URN = re.compile(
    r"urn:[A-Za-z0-9][A-Za-z0-9._\-]*(?::[A-Za-z0-9][A-Za-z0-9._\-]*)*", re.IGNORECASE
)
_SPACE = " \t\r\n\f"
_PUNCT = {"(": "lparen", ")": "rparen", "[": "lbrack", "]": "rbrack", ".": "dot"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, string, number, lparen, rparen, lbrack, rbrack, dot, end
    text: str
    pos: int
    value: Value = None


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch in _PUNCT:
            tokens.append(_Token(_PUNCT[ch], ch, i))
            i += 1
        elif ch == '"':
            try:
                # public in json.decoder, missing from typeshed's stub
                value, end = json.decoder.scanstring(text, i + 1, True)  # type: ignore[attr-defined]
            except json.JSONDecodeError as exc:
                reason = exc.msg.removesuffix(" at").removesuffix(" starting").lower()
                raise FilterError(f"invalid string literal: {reason}", exc.pos, text) from None
            tokens.append(_Token("string", text[i:end], i, value))
            i = end
        elif ch == "-" or ch.isdigit():
            match = _NUMBER.match(text, i)
            end = match.end() if match else i
            if match is None or (end < n and _WORD.match(text[end])):
                raise FilterError("invalid number", i, text)
            raw = match.group()
            number: int | float
            if any(c in raw for c in ".eE"):
                number = float(raw)
                if not math.isfinite(number):
                    raise FilterError("number out of range", i, text)
            else:
                try:
                    number = int(raw)
                except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits)
                    raise FilterError("number out of range", i, text) from None
            tokens.append(_Token("number", raw, i, number))
            i = end
        elif _WORD_START.match(ch):
            match = _WORD.match(text, i)
            assert match is not None
            tokens.append(_Token("word", match.group(), i))
            i = match.end()
        else:
            raise FilterError(f"unexpected character {ch!r}", i, text)
    tokens.append(_Token("end", "", n))
    return tokens


# ----------------------------------------------------------------------------------------- parsing


def parse_filter(text: str) -> Node:
    """Parse a SCIM filter into a tree of frozen nodes; raise FilterError (with position) if bad."""
    if not isinstance(text, str):
        raise TypeError(f"a filter is a str, not {type(text).__name__}")
    return _Parser(text).parse()


def compile_filter(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Parse once and return a predicate telling whether a resource matches the filter."""
    node = parse_filter(text)

    def predicate(resource: Mapping[str, Any]) -> bool:
        return matches(node, resource)

    predicate.__doc__ = f"Whether a resource matches the SCIM filter {text!r}."
    return predicate


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0

    # helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, reason: str, position: int) -> FilterError:
        return FilterError(reason, position, self.text)

    def is_word(self, token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.text.lower() in words

    # grammar
    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty filter", 0)
        node = self.or_expr(0, None)
        token = self.peek()
        if token.kind == "rparen":
            raise self.error("unbalanced ')' (no '(' to close)", token.pos)
        if token.kind != "end":
            raise self.error(
                f"unexpected {_describe(token)}; expected 'and', 'or' or the end of the filter",
                token.pos,
            )
        return node

    def or_expr(self, depth: int, scope: AttrPath | None) -> Node:
        node = self.and_expr(depth, scope)
        while self.is_word(self.peek(), "or"):
            self.advance()
            node = Or(node, self.and_expr(depth, scope))
        return node

    def and_expr(self, depth: int, scope: AttrPath | None) -> Node:
        node = self.unary(depth, scope)
        while self.is_word(self.peek(), "and"):
            self.advance()
            node = And(node, self.unary(depth, scope))
        return node

    def group(self, depth: int, scope: AttrPath | None) -> Node:
        opening = self.advance()  # '('
        if depth + 1 > MAX_DEPTH:
            raise self.error(f"filter nests deeper than {MAX_DEPTH} levels", opening.pos)
        node = self.or_expr(depth + 1, scope)
        token = self.peek()
        if token.kind == "rparen":
            self.advance()
            return node
        if token.kind == "end":
            raise self.error("unbalanced '(' (never closed)", opening.pos)
        raise self.error(f"unexpected {_describe(token)}; expected 'and', 'or' or ')'", token.pos)

    def unary(self, depth: int, scope: AttrPath | None) -> Node:
        token = self.peek()
        if token.kind == "lparen":
            return self.group(depth, scope)
        if self.is_word(token, "not"):
            following = self.peek(1)
            if following.kind == "lparen":
                self.advance()
                return Not(self.group(depth, scope))
            if following.kind == "word" and following.text.lower() not in COMPARE_OPS | {"pr"}:
                raise self.error("expected '(' after 'not'", following.pos)
        if self.is_word(token, "and", "or"):
            raise self.error(
                f"unexpected {_describe(token)}; expected an attribute path or '('", token.pos
            )
        if token.kind == "word":
            return self.attr_expr(depth, scope)
        if token.kind == "end":
            raise self.error("expected an attribute path or '(' but the filter ended", token.pos)
        raise self.error(
            f"unexpected {_describe(token)}; expected an attribute path or '('", token.pos
        )

    def attr_expr(self, depth: int, scope: AttrPath | None) -> Node:
        word = self.advance()
        path = _attr_path(word.text, word.pos, self.text)
        token = self.peek()
        if token.kind == "lbrack":
            if scope is not None:
                raise self.error(f"a value path cannot be nested inside '{scope}[...]'", token.pos)
            if path.sub is not None:
                raise self.error(
                    f"a value path selects from a multi-valued attribute, not from the "
                    f"sub-attribute '{path}'",
                    token.pos,
                )
            if depth + 1 > MAX_DEPTH:
                raise self.error(f"filter nests deeper than {MAX_DEPTH} levels", token.pos)
            self.advance()
            condition = self.or_expr(depth + 1, path)
            closing = self.peek()
            if closing.kind == "end":
                raise self.error("unbalanced '[' (never closed)", token.pos)
            if closing.kind != "rbrack":
                raise self.error(
                    f"unexpected {_describe(closing)}; expected 'and', 'or' or ']'", closing.pos
                )
            self.advance()
            if self.peek().kind != "dot":
                return ValuePath(path, condition)
            dot = self.advance()
            name = self.peek()
            if name.kind != "word" or not _NAME.fullmatch(name.text):
                raise self.error(
                    "expected a sub-attribute name after '].'",
                    name.pos if name.kind != "end" else dot.pos + 1,
                )
            self.advance()
            return ValuePath(path, condition, self.test(AttrPath(name.text)))
        if scope is not None and path.urn is not None:
            raise self.error(
                f"an attribute inside '{scope}[...]' is a sub-attribute: it cannot carry a URN",
                word.pos,
            )
        return self.test(path)

    def test(self, path: AttrPath) -> Compare | Present:
        token = self.peek()
        if token.kind == "end":
            raise self.error(f"expected an operator after '{path}' but the filter ended", token.pos)
        if token.kind != "word":
            raise self.error(
                f"expected an operator after '{path}' but found {_describe(token)}", token.pos
            )
        op = token.text.lower()
        if op == "pr":
            self.advance()
            return Present(path)
        if op not in COMPARE_OPS:
            raise self.error(
                f"unknown operator {token.text!r} (expected one of eq, ne, co, sw, ew, gt, ge, "
                f"lt, le, pr)",
                token.pos,
            )
        self.advance()
        return Compare(path, op, self.value(op, token))

    def value(self, op: str, op_token: _Token) -> Value:
        token = self.peek()
        if token.kind == "end":
            raise self.error(f"missing value after '{op_token.text}'", token.pos)
        if token.kind in ("string", "number"):
            value = token.value
        elif token.kind == "word" and token.text.lower() in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[token.text.lower()]
        else:
            hint = " (string values need double quotes)" if token.kind == "word" else ""
            raise self.error(
                f"expected a value (a JSON string or number, true, false or null) but found "
                f"{_describe(token)}{hint}",
                token.pos,
            )
        if op in ORDERING_OPS and (value is None or isinstance(value, bool)):
            raise self.error(
                f"'{op}' cannot compare with {_literal(value)}: ordering needs a string or number",
                token.pos,
            )
        if op in SUBSTRING_OPS and not isinstance(value, str):
            raise self.error(f"'{op}' needs a string value, not {_literal(value)}", token.pos)
        self.advance()
        return value


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of filter"
    return repr(token.text)


def _attr_path(word: str, pos: int, text: str) -> AttrPath:
    """Split and check an attribute path token: ``[urn ":"] ATTRNAME ["." ATTRNAME]``."""
    urn: str | None = None
    rest, offset = word, 0
    if word[:4].lower() == "urn:":
        urn, _, rest = word.rpartition(":")
        offset = len(urn) + 1
        if not _URN.fullmatch(urn):
            raise FilterError(f"invalid schema URN {urn!r}", pos, text)
        if not rest:
            raise FilterError(
                f"missing attribute name after the schema URN {urn!r}", pos + offset, text
            )
    elif ":" in word:
        raise FilterError(
            f"invalid attribute path {word!r} (':' only separates a schema URN 'urn:...' from "
            f"the attribute name)",
            pos + word.index(":"),
            text,
        )
    name, dot, sub = rest.partition(".")
    if not _NAME.fullmatch(name):
        raise FilterError(f"invalid attribute name {name!r}", pos + offset, text)
    if dot and not _NAME.fullmatch(sub):
        raise FilterError(
            f"invalid sub-attribute name {sub!r} in {word!r}", pos + offset + len(name) + 1, text
        )
    return AttrPath(name, sub if dot else None, urn)


# -------------------------------------------------------------------------------------- evaluation


def matches(node: Node, resource: Mapping[str, Any]) -> bool:
    """Whether a resource (a JSON-like mapping as a SCIM server returns it) satisfies a filter."""
    return _eval(node, resource, "")


def _eval(node: Node, obj: Any, scope: str) -> bool:
    if isinstance(node, Compare):
        return _eval_compare(node, obj, scope)
    if isinstance(node, Present):
        return _is_present(_raw(node.path, obj))
    if isinstance(node, And):
        return all(_eval(operand, obj, scope) for operand in _chain(node))
    if isinstance(node, Or):
        return any(_eval(operand, obj, scope) for operand in _chain(node))
    if isinstance(node, Not):
        return not _eval(node.operand, obj, scope)
    if isinstance(node, ValuePath):
        return _eval_value_path(node, obj, scope)
    raise TypeError(f"not a filter node: {node!r}")


def _chain(node: And | Or) -> list[Node]:
    """The operands of a left-leaning chain ``a and b and c`` in order, without recursion."""
    kind = type(node)
    operands: list[Node] = []
    current: Node = node
    while type(current) is kind:
        operands.append(current.right)
        current = current.left
    operands.append(current)
    operands.reverse()
    return operands


def _container(path: AttrPath, obj: Any) -> Any:
    """The mapping holding the path's attribute: the resource itself, or its extension object."""
    if path.urn is None:
        return obj
    urn = path.urn.lower()
    if urn.startswith(CORE_SCHEMA_PREFIX):
        schemas = get_ci(obj, "schemas")
        if isinstance(schemas, list) and not any(
            isinstance(s, str) and s.lower() == urn for s in schemas
        ):
            return None
        return obj
    return get_ci(obj, path.urn)


def _raw(path: AttrPath, obj: Any) -> list[Any]:
    """The values a path designates, as stored (elements of a multi-valued attribute flattened)."""
    if not isinstance(obj, Mapping):
        # A scalar element of a multi-valued attribute, inside brackets: `value` is the element.
        return (
            [obj] if path.name.lower() == "value" and path.sub is None and path.urn is None else []
        )
    head = get_ci(_container(path, obj), path.name)
    if path.sub is None:
        return [head]
    if isinstance(head, list):
        out: list[Any] = []
        for element in head:
            value = get_ci(element, path.sub)
            out.extend(value if isinstance(value, list) else [value])
        return out
    return [get_ci(head, path.sub)]


def _operands(path: AttrPath, obj: Any, scope: str) -> tuple[list[Any], bool]:
    """The values a comparison looks at (any may match) and whether they compare case-exactly."""
    dotted = path.name.lower() + (f".{path.sub.lower()}" if path.sub else "")
    values = _raw(path, obj)
    if path.sub is None and len(values) == 1 and isinstance(values[0], list):
        # A multi-valued attribute compared without a sub-attribute compares each element's `value`.
        elements = values[0]
        values = [get_ci(e, "value") if isinstance(e, Mapping) else e for e in elements]
        if any(isinstance(e, Mapping) for e in elements):
            dotted += ".value"
    if path.urn is not None and not path.urn.lower().startswith(CORE_SCHEMA_PREFIX):
        key = f"{path.urn.lower()}:{dotted}"
    else:
        key = f"{scope}.{dotted}" if scope else dotted
    return [v for v in values if v is not None], key in CASE_EXACT


def _eval_compare(node: Compare, obj: Any, scope: str) -> bool:
    if node.value is None:
        present = _is_present(_raw(node.path, obj))
        return present if node.op == "ne" else not present
    values, exact = _operands(node.path, obj, scope)
    if node.op == "ne":
        return not any(_compare(value, "eq", node.value, exact) for value in values)
    return any(_compare(value, node.op, node.value, exact) for value in values)


def _compare(actual: Any, op: str, expected: str | float | bool, exact: bool) -> bool:
    """One stored value against one filter value (never None here)."""
    left: Any
    right: Any
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return False
        folded, wanted = _fold(actual, exact), _fold(expected, exact)
        if op == "co":
            return wanted in folded
        if op == "sw":
            return folded.startswith(wanted)
        if op == "ew":
            return folded.endswith(wanted)
        left, right = folded, wanted
    elif isinstance(expected, bool):
        return op == "eq" and isinstance(actual, bool) and actual is expected
    else:
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        left, right = actual, expected
    if op == "eq":
        return bool(left == right)
    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    if op == "le":
        return bool(left <= right)
    return False


@lru_cache(maxsize=4096)
def _fold(value: str, exact: bool) -> str:
    return unicodedata.normalize("NFC", value) if exact else fold_case(value)


def fold_case(value: str) -> str:
    """A string as it compares case-insensitively, in filters and wherever else names match so (the
    scope settings naming groups): NFC-normalised, case-folded, normalised again."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold())


def _is_present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, Mapping):
        return any(_is_present(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_is_present(v) for v in value)
    return True


def _eval_value_path(node: ValuePath, obj: Any, scope: str) -> bool:
    head = get_ci(_container(node.path, obj), node.path.name)
    if isinstance(head, list):
        elements = head
    elif head is None:
        return False
    else:
        elements = [head]
    name = node.path.name.lower()
    if node.path.urn is not None and not node.path.urn.lower().startswith(CORE_SCHEMA_PREFIX):
        inner = f"{node.path.urn.lower()}:{name}"
    else:
        inner = f"{scope}.{name}" if scope else name
    for element in elements:
        if element is None:
            continue
        if _eval(node.condition, element, inner) and (
            node.sub is None or _eval(node.sub, element, inner)
        ):
            return True
    return False
