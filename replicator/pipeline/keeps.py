"""What a destination keeps of what it is sent: learned, not assumed. Pure; no I/O.

`observe(sent, held)` compares a form we wrote with the destination's form of it (the answer to the
write, or a later read-back) and names, per attribute path, how it came back: kept, or dropped
(absent), kept fewer values (a multi-valued attribute, say one email), case-changed, truncated. A
path is `name`, `name.sub` for a complex attribute's sub-attribute, or `urn:...:User:sub` for an
extension's attribute (the URN alone: the whole extension). Other differences are not learned (drift).
A multi-valued attribute of complex values (`emails`) is observed at each sub-attribute too (`emails.type`,
never `emails.value`): kept when a value held back carries it, dropped when none of the held values that
were sent with it does; the attribute itself is then observed without the dropped sub-attributes (so a
destination dropping `emails.type` and keeping one email is learned as both).

`revise` turns a cycle's observations into the profile kept in the state: a path is learned as not
kept when the cycle saw it lost and never kept, and forgotten when the cycle saw it kept. Integrity
attributes (`INTEGRITY`) are never learned: a destination losing them is reported (`integrity_note`),
not hidden. Group members are not observed here (the writer checks them on every write).

`as_held(live, desired, previous, profile)` is the compare's side: for a learned path whose source
value did not change since we last sent it, the live form takes the desired value, so a full reconcile
sees no difference there; a source change in it differs from what we sent and is sent again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from replicator.pipeline.canonical import comparable, project, same
from replicator.scim.urns import ENTERPRISE_USER

KEPT = "kept"
DROPPED = "dropped"
FEWER = "fewer values"
CASE = "case changed"
TRUNCATED = "truncated"
LOST = (DROPPED, FEWER, CASE, TRUNCATED)

# what losing would make a different object, or a broken reference: never hidden
INTEGRITY = frozenset({"id", "username", "displayname", "members", "active", "externalid", "schemas", "meta",
                       f"{ENTERPRISE_USER}:manager".lower()})
_NOT_OBSERVED = frozenset({"id", "members", "schemas", "meta"})

_WORDS = {DROPPED: "does not keep", FEWER: "keeps fewer values of", CASE: "changes the case of",
          TRUNCATED: "truncates"}


@dataclass(frozen=True)
class Learned:
    """One path of a destination's profile: how it loses it, and on how many objects that was seen."""

    how: str
    objects: int


Profile = Mapping[str, Learned]  # path -> how it is lost


def observe(sent: Mapping[str, Any], held: Mapping[str, Any]) -> dict[str, str]:
    """Path -> how the destination's form `held` came back for each attribute of `sent` (both
    canonical; `held` spelled and limited as `project` does). Members are left out."""
    whole = held == sent  # the common case (a destination holding what it was sent): nothing to project
    held = held if whole else project(dict(held), dict(sent))
    out: dict[str, str] = {}
    for key, value in sent.items():
        if key.lower() in _NOT_OBSERVED:
            continue
        back = value if whole else held.get(key)
        if isinstance(value, dict) and isinstance(back, dict):
            joint = ":" if key.startswith("urn:") else "."
            for sub, sub_value in value.items():
                out[f"{key}{joint}{sub}"] = _how(sub_value, back.get(sub))
        elif type(value) is list and type(back) is list and value and type(value[0]) is dict:
            dropped = _entry_subs_observed(key, value, back, out)
            out[key] = _how([_without(entry, dropped) for entry in value] if dropped else value, back)
        else:
            out[key] = _how(value, back)
    return out


def observed_shape(sent: Mapping[str, Any]) -> list[Any]:
    """What decides the paths `observe(sent, held)` names when `held` equals `sent` (all kept), one
    hashable entry per attribute: its name, with its sub-attributes' names (a complex value's; each
    value's of a multi-valued attribute of complex values). Equal entries name the same paths."""
    shape: list[Any] = []
    for key, value in sent.items():
        if isinstance(value, dict):
            shape.append((key, tuple(value)))
        elif type(value) is list and value and type(value[0]) is dict:
            shape.append((key, tuple(tuple(entry) if type(entry) is dict else None for entry in value)))
        else:
            shape.append(key)
    return shape


def _entry_subs_observed(key: str, sent: list[Any], back: list[Any], out: dict[str, str]) -> set[str]:
    """Observe each sub-attribute of a multi-valued attribute's values (into `out`, as `key.sub`): kept
    when a held value paired with a sent one carrying it carries it too, dropped when none does (a sent
    value is paired with the held value of the same `value`, or by position among values without one).
    Returns the dropped sub-attributes."""
    if back is sent:  # held as sent (the common case): every part kept
        out.update({f"{key}.{sub}": KEPT for entry in sent if type(entry) is dict for sub in entry if sub != "value"})
        return set()
    held_by_value = {entry["value"]: entry for entry in back if type(entry) is dict and type(entry.get("value")) is str}
    held_plain = [entry for entry in back if type(entry) is dict and type(entry.get("value")) is not str]
    found: dict[str, bool] = {}  # sub -> a held value carries it
    plain = 0
    for entry in sent:
        if type(entry) is not dict:
            continue
        if type(entry.get("value")) is str:
            pair = held_by_value.get(entry["value"])
        else:
            pair, plain = (held_plain[plain] if plain < len(held_plain) else None), plain + 1
        if pair is None:
            continue  # not held back at all (a destination keeping fewer values): says nothing of its parts
        for sub in entry:
            if sub != "value":
                found[sub] = found.get(sub, False) or sub in pair
    for sub, kept in found.items():
        out[f"{key}.{sub}"] = KEPT if kept else DROPPED
    return {sub for sub, kept in found.items() if not kept}


def _without(entry: Any, subs: set[str]) -> Any:
    return {k: v for k, v in entry.items() if k not in subs} if type(entry) is dict else entry


def _how(sent: Any, back: Any) -> str:
    if back is sent:
        return KEPT
    if back is None:
        return DROPPED
    if same(sent, back):
        return KEPT
    if _folded(sent) == _folded(back):
        return CASE
    if isinstance(sent, str) and isinstance(back, str) and back and sent.startswith(back):
        return TRUNCATED
    if isinstance(sent, list) and isinstance(back, list) and len(back) < len(sent):
        values = [comparable(item) for item in sent]
        if all(comparable(item) in values for item in back):
            return FEWER
    return "other"


def _folded(value: Any) -> Any:
    """A value with every string lower-cased (keys too), multi-valued attributes as sets."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, dict):
        return {key.casefold(): _folded(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return comparable([_folded(item) for item in value])
    return value


class Observations:
    """A cycle's observations of one kind: per path, how many objects lost it (and how), and how many
    kept it; losses of integrity paths apart (reported, never learned)."""

    def __init__(self) -> None:
        self.lost: dict[str, Counter[str]] = {}
        self.kept: Counter[str] = Counter()
        self.integrity: dict[str, Counter[str]] = {}

    def add(self, seen: Mapping[str, str]) -> None:
        for path, how in seen.items():
            if how == KEPT:
                self.kept[path] += 1
            elif how in LOST:
                losses = self.integrity if path.lower() in INTEGRITY else self.lost
                losses.setdefault(path, Counter())[how] += 1


def revise(profile: Profile, seen: Observations) -> tuple[dict[str, Learned], list[str], list[str]]:
    """The profile after a cycle's observations, with the paths learned and forgotten by it. A path is
    learned when the cycle saw it lost and never kept (kept anywhere: a loss elsewhere may be drift),
    and forgotten when the cycle saw it kept; a path not seen either way keeps its entry. Its object
    count is the most objects one cycle saw lose it (a cycle creating one user does not lower it)."""
    out = {path: entry for path, entry in profile.items() if not seen.kept[path]}
    forgotten = sorted(path for path in profile if path not in out)
    learned = []
    for path, hows in seen.lost.items():
        if seen.kept[path] or path.lower() in INTEGRITY:
            continue
        how, _ = hows.most_common(1)[0]
        before = out.get(path)
        if before is None:
            learned.append(path)
        out[path] = Learned(how, max(sum(hows.values()), before.objects if before else 0))
    return out, sorted(learned), forgotten


def _locate(form: Mapping[str, Any], path: str) -> tuple[str, str | None]:
    """(attribute, sub-attribute or None) of a path in a form."""
    if path in form:
        return path, None
    head, joint, sub = path.rpartition(":") if path.startswith("urn:") else path.partition(".")
    return (head, sub) if joint else (path, None)


def _at(form: Mapping[str, Any] | None, key: str, sub: str | None) -> Any:
    value = (form or {}).get(key)
    if sub is None:
        return value
    return value.get(sub) if isinstance(value, dict) else None


def as_held(live: dict[str, Any], desired: Mapping[str, Any], previous: Mapping[str, Any] | None,
            profile: Profile) -> tuple[dict[str, Any], list[str]]:
    """`live` as the compare should see it, and the learned paths at which that hid a difference: at a
    learned path whose desired value is what we last sent (`previous`) and where the destination's
    value differs from it the way it was learned to (absent where dropped, fewer values, ...), the live
    form holds the desired value. Any other difference there (drift) is compared as it is."""
    if not profile or previous is None:
        return live, []
    view = project(live, dict(desired))
    held = live
    hidden = []
    for path in sorted(profile, key=len, reverse=True):  # `emails.type` before `emails`: it restores first
        entry = profile[path]
        key, sub = _locate(desired, path)
        if sub is not None and type(desired.get(key)) is list:
            restored = _entries_restored(desired[key], (previous or {}).get(key), view.get(key), sub, entry.how)
            if restored is not None:
                held = dict(live) if held is live else held
                held[next((k for k in held if k.lower() == key.lower()), key)] = view[key] = restored
                hidden.append(path)
            continue
        want = _at(desired, key, sub)
        if want is None or not same(want, _at(previous, key, sub)):
            continue  # not sent, or changed in the source: compared (and sent) as it is
        if _how(want, _at(view, key, sub)) != entry.how:
            continue  # held as sent, or changed otherwise than the destination does
        if held is live:
            held = dict(live)
        spelled = next((k for k in held if k.lower() == key.lower()), key)
        if sub is None:
            held[spelled] = want
        else:
            parent = held.get(spelled)
            held[spelled] = {**(parent if isinstance(parent, dict) else {}), sub: want}
        hidden.append(path)
    return held, hidden


def _entries_restored(want: list[Any], previous: Any, live: Any, sub: str, how: str) -> list[Any] | None:
    """The desired values of a multi-valued attribute matching the destination's values `live`, each
    of which lacks the sub-attribute `sub` it was learned to drop and otherwise equals a desired value;
    None when that is not so, or when the source changed `sub` since we last sent it (it is sent)."""
    if how != DROPPED or type(live) is not list or not live or type(previous) is not list:
        return None
    if not same([{"value": e.get("value"), sub: e.get(sub)} for e in want if type(e) is dict],
                [{"value": e.get("value"), sub: e.get(sub)} for e in previous if type(e) is dict]):
        return None
    restored = []
    for held in live:
        if type(held) is not dict or sub in held:
            return None
        match = next((e for e in want if type(e) is dict and same(_without(e, {sub}), held)), None)
        if match is None:
            return None
        restored.append(match)
    return restored


def patched_form(operations: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The part of a form a PATCH's operations set (`replace`/`add` with a value; members left out), to
    observe the PATCH's answer against: `name.givenName` as `{"name": {"givenName": ...}}`, an
    extension's `urn:...:User:department` under its URN."""
    form: dict[str, Any] = {}
    for op in operations:
        path, value = op.get("path"), op.get("value")
        if not isinstance(path, str) or value is None or str(op.get("op", "")).lower() == "remove":
            continue
        if path.lower() == "members" or path.lower().startswith("members["):
            continue
        head, joint, sub = path.rpartition(":") if path.startswith("urn:") else path.partition(".")
        if joint:
            form.setdefault(head, {})[sub] = value
        else:
            form[path] = value
    return form


def loss_words(path: str, how: str) -> str:
    """`does not keep nickName`, `keeps fewer values of emails`, ..."""
    return f"{_WORDS.get(how, 'does not keep')} {path}"


def profile_note(kind: str, profile: Profile, hidden: Counter[str], learned: Iterable[str] = ()) -> str | None:
    """One line for a kind's learned profile, grouped by how the destination loses each path: on how
    many objects that was seen, how many differ there this cycle (not written again), which are new."""
    if not profile:
        return None
    noun = kind.lower() + "s"
    new = set(learned)
    by_how: dict[str, list[str]] = {}
    for path, entry in sorted(profile.items()):
        facts = [f"{entry.objects} {noun}"]
        if hidden[path]:
            facts.append(f"{hidden[path]} differ there this cycle")
        if path in new:
            facts.append("learned now")
        by_how.setdefault(entry.how, []).append(f"{path} ({', '.join(facts)})")
    parts = [f"{_WORDS.get(how, 'does not keep')} {', '.join(paths)}" for how, paths in sorted(by_how.items())]
    return (f"the destination {'; '.join(parts)}: not written again while the source value is unchanged "
            "(`status` lists them)")


def integrity_note(kind: str, seen: Observations) -> str | None:
    """One line for integrity attributes the destination did not hold as sent (never learned, so
    compared and written as usual)."""
    if not seen.integrity:
        return None
    parts = [f"{loss_words(path, hows.most_common(1)[0][0])} ({sum(hows.values())} {kind.lower()}s)"
             for path, hows in sorted(seen.integrity.items())]
    return (f"the destination {'; '.join(parts)}: these identify the object or its references, so they are "
            "compared and written as usual, never hidden")


def forgotten_note(kind: str, forgotten: Iterable[str]) -> str | None:
    """One line for the paths this cycle saw the destination keep again."""
    paths = list(forgotten)
    if not paths:
        return None
    return (f"the destination was seen keeping {', '.join(paths)} of {kind.lower()}s again: compared and "
            "written again")


def member_limit_words(limit: int, learned: str, who: str = "the destination") -> str:
    """`the destination takes at most 100 members per request (learned 2026-01-02 03:04:05)`."""
    return f"{who} takes at most {limit} members per request (learned {learned})"


def probe_words(limit: int, learned: str, setting: int, largest_taken: int, *, raised: bool = False) -> str:
    """What a cycle probing a learned member limit (sending up to `setting` members per request again)
    found: the destination took a request of the setting's count (the limit is forgotten), of more than
    the limit (raised to it), or no request carried more (kept); but for the first, the next cycle
    tries again. `raised`: the limit is what an earlier probe found taken (dated then), not a refusal."""
    known = (f"the destination took {limit} members in one request (the limit raised {learned})" if raised
             else f"the destination took at most {limit} members per request (learned {learned})")
    tried = f"{known}; this cycle tried {setting}"
    if largest_taken >= setting:
        return f"{tried} and it took them: the limit is forgotten, group writes carry up to {setting} members each"
    found = (f"it took {largest_taken} in one request (the limit is raised to that)" if largest_taken > limit
             else f"no request carried more than {limit} members")
    return f"{tried}: {found}; the next cycle tries again (a 400 about the count learns the limit anew)"
