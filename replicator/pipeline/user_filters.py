"""The ids a PingOne dynamic group's `userFilter` names, and their translation into another environment's
ids. Pure; no I/O.

A userFilter is PingOne's user search filter (its documents: "the filter supports all the operators and
properties that are supported when searching user data"): `attr op "value"`, `and` / `or`, parentheses,
and `memberOfGroups[id eq "<group id>"]`. Three kinds of term name an id that differs per environment:

- `population.id eq "<population id>"` (the dynamic group examples filter by Population ID): POPULATION;
- `memberOfGroups[id eq "<group id>"]` (the users search's group filter): GROUP;
- `id eq "<user id>"` (a user's own id, a user property like any other): USER.

`references` finds them with a small tokenizer (JSON-quoted strings, brackets, parentheses, words) that
keeps each value's place in the text; `rewritten` replaces only those quoted values and leaves every
other byte of the filter as it was. A term that names an id with an operator other than `eq` / `ne`
(`population.id sw "1000"`) names part of an id, which no other environment has: it is a `Reference`
with `whole=False`, which `translated` never rewrites and always reports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

POPULATION = "population"
GROUP = "group"
USER = "user"

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[()\[\]])|(?P<word>[^\s()\[\]"]+))')
_WHOLE_ID_OPERATORS = frozenset({"eq", "ne"})
_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


class UserFilterError(ValueError):
    """A userFilter this module cannot read (an unterminated string): whether it names ids is unknown."""


@dataclass(frozen=True)
class Reference:
    """One id a userFilter names: its kind (POPULATION, GROUP, USER), the id as written (unquoted), the
    operator comparing it, and where its quoted literal lies in the text (`start`, `end`)."""

    kind: str
    value: str
    op: str
    start: int
    end: int

    @property
    def whole(self) -> bool:
        """Whether the term names a whole id (`eq`, `ne`), which another environment's id can replace."""
        return self.op in _WHOLE_ID_OPERATORS


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "punct" or "word"
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            if text[position:].strip():
                raise UserFilterError(f"cannot read the userFilter {text!r} at character {position}")
            break
        kind = found.lastgroup or "word"
        tokens.append(_Token(kind, found.group(kind), found.start(kind), found.end(kind)))
        position = found.end()
    return tokens


def _unquoted(literal: str) -> str:
    try:
        value = json.loads(literal)
    except ValueError:  # an escape JSON lacks: the emulator and PingOne read `\x` as `x`
        value = re.sub(r"\\(.)", r"\1", literal[1:-1])
    return value if isinstance(value, str) else literal[1:-1]


def references(text: str) -> list[Reference]:
    """The ids `text` names, in the order they appear. Raises UserFilterError when it cannot be read."""
    tokens = _tokens(text)
    found: list[Reference] = []
    depth = 0  # inside memberOfGroups[...]: `id` is the group's, not the user's
    for index, token in enumerate(tokens):
        if token.kind == "punct":
            depth += token.text == "["
            depth -= token.text == "]"
            continue
        if token.kind != "word" or index + 2 >= len(tokens):
            continue
        op, literal = tokens[index + 1], tokens[index + 2]
        if op.kind != "word" or op.text.lower() not in _OPERATORS or literal.kind != "string":
            continue
        name = token.text.lower()
        if name == "population.id" and depth == 0:
            kind = POPULATION
        elif name == "id" and depth == 0:
            kind = USER
        elif name == "id" and index >= 2 and tokens[index - 1].text == "[" \
                and tokens[index - 2].text.lower() == "memberofgroups":
            kind = GROUP
        else:
            continue
        found.append(Reference(kind, _unquoted(literal.text), op.text.lower(), literal.start, literal.end))
    return found


def rewritten(text: str, replacements: Mapping[tuple[int, int], str]) -> str:
    """`text` with each quoted literal at (start, end) replaced by the JSON-quoted new value; every
    other byte as it was."""
    out, position = [], 0
    for (start, end), value in sorted(replacements.items()):
        out += [text[position:start], json.dumps(value, ensure_ascii=False)]
        position = end
    out.append(text[position:])
    return "".join(out)


@dataclass(frozen=True)
class Translation:
    """A userFilter in another environment's ids: `text` has every id translated that could be, and
    `untranslated` holds the references that could not (their values left as they were)."""

    text: str
    untranslated: tuple[Reference, ...]


def translated(text: str, ids: Mapping[str, Mapping[str, str]]) -> Translation:
    """`text` with the ids it names replaced through `ids` (kind -> this side's id -> the other side's).
    A kind missing from `ids` is left as it is and not reported (its ids are not this caller's to
    translate); a reference of a kind given whose id is not in its map, or that names part of an id
    (`sw`, `co`, ...), is left as it is and reported in `untranslated`."""
    replacements: dict[tuple[int, int], str] = {}
    untranslated: list[Reference] = []
    for reference in references(text):
        table = ids.get(reference.kind)
        if table is None:
            continue
        other = table.get(reference.value) if reference.whole else None
        if other is None:
            untranslated.append(reference)
        elif other != reference.value:
            replacements[(reference.start, reference.end)] = other
    return Translation(rewritten(text, replacements), tuple(untranslated))


def named_ids(text: str, kind: str) -> list[str]:
    """The whole ids of one kind `text` names, in order, each once (none when it cannot be read)."""
    try:
        found = references(text)
    except UserFilterError:
        return []
    return list(dict.fromkeys(r.value for r in found if r.kind == kind and r.whole))


def refusal(reference: Reference, *, side: str, source_name: str | None = None, wanted_name: str | None = None) -> str:
    """Why a group whose userFilter names `reference`, which could not be translated for `side`, is not
    written: the id, and for a population the name it has on the source (`source_name`, None when the
    source has no such population) and the name looked for on `side` (`wanted_name`)."""
    after = "so the group is not written (a filter naming another environment's id matches nobody)"
    quoted = json.dumps(reference.value, ensure_ascii=False)
    if not reference.whole:
        return (f"its userFilter compares {_PATHS[reference.kind]} with {reference.op} {quoted}, part of an id, "
                f"which no other environment has, {after}")
    if reference.kind == POPULATION and source_name is None:
        return f"its userFilter names population id {quoted}, which is no population of the source, {after}"
    if reference.kind == POPULATION:
        return (f"its userFilter names population id {quoted} ({json.dumps(source_name, ensure_ascii=False)} on "
                f"the source), and {side} has no population named {json.dumps(wanted_name, ensure_ascii=False)}, "
                f"{after}")
    if reference.kind == GROUP:
        return (f"its userFilter names group id {quoted} (memberOfGroups), and {side} has no such group (that "
                f"group is not replicated there), {after}")
    return f"its userFilter names user id {quoted}, and user ids in a userFilter are not translated, {after}"


_PATHS = {POPULATION: "population.id", GROUP: "memberOfGroups[id]", USER: "id"}
