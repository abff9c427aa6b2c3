"""The reports: a cycle's (text for people, JSON for machines) and the state's (`status`).

Pure formatting: every function takes what was done or read and returns text or plain data; nothing
here reads the state, talks to a server or prints.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import textwrap
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from replicator.cycle import CycleResult
from replicator.pipeline.approvals import approval_reach
from replicator.pipeline.keeps import loss_words, member_limit_words
from replicator.pipeline.member_refusals import LearnedLimit
from replicator.pipeline.outcome import Outcome
from replicator.pipeline.plan import CREATE, Step
from replicator.state import RunRecord
from replicator.state.approvals import Approval
from replicator.state.keeps import MEMBERS_PER_REQUEST_RAISED
from replicator.state.records import FailedResource


def counts_text(result: CycleResult) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(result.counts.items()) if count) or "nothing to do"


MAIN_COUNTS = ("created", "updated", "deleted", "failed")  # always in a cycle's log line, also when 0


def cycle_line(result: CycleResult) -> str:
    """A cycle in one line of plain words, for its INFO log record: `full ok in 2.31s: created 5, updated
    2, deleted 0, failed 0; also adopted 3, unchanged 40; destination flow: ...`."""
    head = f"{result.mode}{' dry run' if result.dry_run else ''} {result.outcome} in {result.seconds:.2f}s"
    main = ", ".join(f"{name} {result.counts.get(name, 0)}" for name in MAIN_COUNTS)
    others = ", ".join(f"{name} {count}" for name, count in sorted(result.counts.items())
                       if count and name not in MAIN_COUNTS)
    flow = f"; {flow_text(result.destination_flow)}" if result.destination_flow else ""
    return f"{head}: {main}" + (f"; also {others}" if others else "") + flow


SECRET_ATTRIBUTES = frozenset({"password"})  # never shown in a plan
MEMBERS_LISTED = 20  # a longer member list is shown as its count


def _name(dest_id: str, names: dict[str, str], show_ids: bool) -> str:
    name = names.get(dest_id)
    if name is None:
        return dest_id
    return f"{name} [{dest_id}]" if show_ids and not dest_id.startswith("<new ") else name


def _named_members(members: list[Any], names: dict[str, str], show_ids: bool) -> str:
    if len(members) > MEMBERS_LISTED:
        return f"({len(members)} members)"
    return ", ".join(_name(str(m.get("value")), names, show_ids) if isinstance(m, Mapping) else str(m) for m in members)


def _named_manager(extension: Any, names: dict[str, str], show_ids: bool) -> Any:
    """An enterprise extension with its manager named."""
    manager = extension.get("manager") if isinstance(extension, dict) else None
    if not isinstance(manager, dict) or not isinstance(manager.get("value"), str):
        return extension
    return {**extension, "manager": _name(manager["value"], names, show_ids)}


def body_lines(step: Step, names: dict[str, str], show_ids: bool) -> list[str]:
    """A create's body, an attribute a line: secrets elided, members and manager named, a long member
    list as its count, a long value cut."""
    lines = []
    for attribute, value in (step.desired or {}).items():
        if attribute in SECRET_ATTRIBUTES:
            shown = "(not shown)"
        elif attribute == "members" and isinstance(value, list):
            shown = _named_members(value, names, show_ids)
        else:
            shown = _cut(json.dumps(_named_manager(value, names, show_ids), ensure_ascii=False))
        lines.append(f"          {attribute} = {shown}")
    return lines


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def operation_line(op: dict[str, Any], names: dict[str, str], show_ids: bool) -> str:
    """One operation, members and manager named."""
    path, value = str(op.get("path", "")), op.get("value")
    if path.startswith("members[value eq "):
        literal = path[len("members[value eq "):-1]
        try:
            member = json.loads(literal)
        except ValueError:
            member = literal
        return f"          {op['op']} members {_name(str(member), names, show_ids)}"
    if path == "members" and isinstance(value, list):
        return f"          {op['op']} members {_named_members(value, names, show_ids)}"
    if path.endswith("manager") and isinstance(value, dict) and isinstance(value.get("value"), str):
        return f"          {op['op']} {path} = {_name(value['value'], names, show_ids)}"
    shown = "" if "value" not in op else " = " + _cut(json.dumps(_named_manager(value, names, show_ids),
                                                                  ensure_ascii=False))
    return f"          {op['op']} {path}{shown}"


def describe_step(step: Step, names: dict[str, str] | None = None, *, adopted: bool = False,
                  show_ids: bool = False) -> str:
    """A planned change: a head line naming the object, then a create's body or the operations."""
    names = names or {}
    word = "adopt" if adopted else str(step.action)
    head = f"{word:<7} {step.kind:<5} {step.label or step.source_id}"
    if show_ids:
        head += f" [{step.dest_id or 'source ' + step.source_id}]"
    if step.reason or step.held_why:
        head += f"  ({'; '.join(filter(None, (step.reason, step.held_why)))})"
    lines = [head]
    if step.action == CREATE:
        lines += body_lines(step, names, show_ids)
    lines += [operation_line(op, names, show_ids) for op in step.operations]
    return "\n".join(lines)


def planned_words(result: CycleResult) -> list[tuple[Step, bool]]:
    """The plan's steps, each with whether it is an adoption (an object's first step; a member drop
    after it is a PATCH of its own)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for step in result.changes:
        key = (step.kind, step.source_id)
        out.append((step, key in result.adoptions and key not in seen))
        seen.add(key)
    return out


def shown_body(step: Step, names: dict[str, str]) -> dict[str, Any] | None:
    """A create's body for the JSON plan: secrets elided, members and manager with their names, a long
    member list as {"count": n}."""
    if step.action != CREATE or step.desired is None:
        return None
    body: dict[str, Any] = {}
    for attribute, value in step.desired.items():
        if attribute in SECRET_ATTRIBUTES:
            body[attribute] = "(not shown)"
        elif attribute == "members" and isinstance(value, list):
            body[attribute] = {"count": len(value)} if len(value) > MEMBERS_LISTED else [
                {**m, "name": names.get(str(m.get("value")))} if isinstance(m, Mapping) else m for m in value]
        elif isinstance(value, dict) and isinstance(value.get("manager"), dict):
            manager = value["manager"]
            body[attribute] = {**value, "manager": {**manager, "name": names.get(str(manager.get("value")))}}
        else:
            body[attribute] = value
    return body


def held_lines(held: list[tuple[str, str, str]]) -> list[str]:
    """What the guards held, one line per reason with the objects it holds (a long list is wrapped)."""
    lines = []
    for (kind, reason), entries in itertools.groupby(held, key=lambda entry: (entry[0], entry[2])):
        labels = [label for _, label, _ in entries]
        if len(labels) == 1:
            lines.append(f"held    {kind:<5} {labels[0]}: {reason}")
            continue
        lines.append(f"held    {kind:<5} {len(labels)} listed: {reason}")
        lines += textwrap.wrap(", ".join(labels), width=100, initial_indent=" " * 14, subsequent_indent=" " * 14)
    return lines


def report_text(result: CycleResult, *, show_ids: bool = False) -> str:
    title = "plan (dry run, nothing written)" if result.dry_run else f"{result.mode} cycle {result.outcome}"
    if result.dry_run and result.outcome != Outcome.OK:
        title += f", {result.outcome}"
    lines = [f"{title} in {result.seconds:.2f}s: {counts_text(result)}"]
    lines += [describe_step(step, result.names, adopted=adopted, show_ids=show_ids)
              for step, adopted in planned_words(result)]
    for kind, label, reason in result.failures:
        lines.append(f"failed  {kind:<5} {label}: {reason}")
    lines += held_lines(result.held)
    lines += [f"note: {note}" for note in result.notes]
    lines.append(
        "requests: source " + json.dumps(result.source_requests) + ", destination " + json.dumps(result.destination_requests)
    )
    if result.destination_flow:
        lines.append(flow_text(result.destination_flow))
    return "\n".join(lines)


def flow_text(flow: dict[str, float]) -> str:
    """How the destination's calls went, on one line: retries, 429 answers, pauses and the learned
    rate always; 503 answers, timeouts, concurrency cuts, bulk operations and latency when there are."""

    def count(key: str) -> int:
        return int(flow.get(key, 0))

    parts = [f"retries {count('retries')}", f"429 answers {count('429')}"]
    parts += [f"{label} {count(key)}" for key, label in (("503", "503 answers"), ("timeouts", "timeouts")) if count(key)]
    parts.append(f"paused {flow.get('paused_seconds', 0.0):.1f}s")
    if "learned_rate" in flow:
        parts.append(f"learned rate {flow['learned_rate']:g} requests/s")
    else:
        parts.append("rate learning given up" if count("rate_learning_dropped") else "no rate learned")
    if "concurrency" in flow:
        cuts = count("concurrency_cuts")
        parts.append(f"concurrency {count('concurrency')}" + (f" (cut {cuts} times)" if cuts else ""))
    if count("bulk_operations"):
        parts.append(f"bulk operations {count('bulk_operations')}")
    if "latency_p50_ms" in flow:
        parts.append("latency p50/p90/p99 " + "/".join(f"{flow.get(f'latency_{q}_ms', 0.0):g}" for q in ("p50", "p90", "p99"))
                     + " ms")
    return "destination flow: " + ", ".join(parts)


def report_json(result: CycleResult) -> dict[str, Any]:
    return {
        **result.summary(),
        "changes": [
            {"action": "adopt" if adopted else s.action, "kind": s.kind, "source_id": s.source_id, "label": s.label,
             "destination_id": s.dest_id, "reason": s.reason,
             "operations": msgspec.to_builtins(s.operations),  # (a big group's members are `Member`s)
             **({"body": shown_body(s, result.names)} if s.action == CREATE else {})}
            for s, adopted in planned_words(result)
        ],
        **({"names": result.names} if result.dry_run else {}),
        "failures": [{"kind": k, "label": label, "reason": r} for k, label, r in result.failures],
        "held": [{"kind": k, "label": label, "reason": r} for k, label, r in result.held],
    }


@dataclass(frozen=True)
class StateStatus:
    """What `status` shows: objects replicated by kind, the last runs (newest first), the failed
    resources, what destinations were learned to lose as (destination, kind, path, how, objects, learned
    at), and the limits they were learned to enforce as (destination, name, value, learned at)."""

    state: str
    tracked: dict[str, int]
    runs: list[RunRecord]
    failures: list[FailedResource]
    keeps: list[tuple[str, str, str, str, int, float]] = dataclasses.field(default_factory=list)
    limits: list[tuple[str, str, int, float]] = dataclasses.field(default_factory=list)
    approval: Approval | None = None  # an operator's approval of removals, standing for the next cycle


def status_json(status: StateStatus) -> dict[str, Any]:
    return {
        "tracked": status.tracked,
        "runs": [dataclasses.asdict(r) for r in status.runs],
        "failures": [{"kind": f.kind, "label": f.label, "source_id": f.source_id, "error": f.error,
                      "attempts": f.attempts} for f in status.failures],
        "not_kept": [{"destination": d, "kind": k, "path": p, "how": h, "objects": o, "learned_at": t}
                     for d, k, p, h, o, t in status.keeps],
        "limits": [{"destination": d, "name": n, "value": v, "learned_at": t} for d, n, v, t in status.limits],
        "approval": dataclasses.asdict(status.approval) if status.approval else None,
    }


def failed_name(failure: FailedResource, *, show_ids: bool = False) -> str:
    """A failed resource by its name (userName / displayName), its source id beside it on request;
    by its source id when no name was recorded (it had none, or an older version recorded it)."""
    if not failure.label:
        return failure.source_id
    return f"{failure.label} [source {failure.source_id}]" if show_ids else failure.label


NOTE_SHOWN = 72  # characters of a run's one note on its `status` line (`--notes`: all of each, below it)


def notes_summary(notes: list[str]) -> str:
    """A run's notes on its one `status` line: one note by its first clause (cut short), more by their count."""
    if not notes:
        return ""
    if len(notes) > 1:
        return f"; {len(notes)} notes"
    return "; note: " + textwrap.shorten(notes[0].split("; ", 1)[0], width=NOTE_SHOWN, placeholder=" …")


def run_notes(run: RunRecord) -> tuple[str, list[str]]:
    """A run's outcome in words (an interrupted or failed one says how far it got) and its notes (less
    the one that says the same)."""
    notes = run.counts.get("notes", []) if isinstance(run.counts, dict) else []
    outcome = run.outcome or "unfinished"
    phase = run.counts.get("phase") if isinstance(run.counts, dict) else None
    if phase:  # interrupted or failed: how far it got
        outcome = f"{outcome} during {phase}"
        notes = [note for note in notes if note != outcome]
    return outcome, notes


def run_lines(run: RunRecord, *, notes_in_full: bool = False) -> list[str]:
    """One run in one line (mode, outcome, counts, its notes summed up); `notes_in_full`: each note in
    full on a line of its own below it."""
    counts = run.counts.get("counts", {}) if isinstance(run.counts, dict) else {}
    outcome, notes = run_notes(run)
    started = _local(run.started_at)
    done = "counts not recorded (still running, or the process was killed)" if run.ended_at is None else "nothing done"
    line = (f"run {run.id} {started} {run.mode} {outcome}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or done)
            + ("" if notes_in_full else notes_summary(notes)))
    return [line, *(f"    note: {note}" for note in notes if notes_in_full)]


def _local(epoch: float) -> str:
    """A moment as the report prints it: local time to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def learned_limit_use(limit: LearnedLimit, now: float) -> str:
    """What cycles do with a member-count limit learned from a refusal, at `now`: keep to it until its
    probe is due, then try `sync.member_chunk` again each cycle."""
    probe = _local(limit.probe_at)
    if limit.due(now):
        return (f"its probe is due (since {probe}): each cycle tries sync.member_chunk again (a request of that "
                "many taken forgets the limit, a 400 about the count learns it anew)")
    return f"group writes carry at most {limit.value} members each until a cycle from {probe} tries sync.member_chunk again"


def approval_words(approval: Approval) -> str:
    """What `approve` and `status` say of a standing approval of removals."""
    return (f"the next cycle may carry out {approval_reach(approval.up_to, approval.members_up_to)} (approved "
            f"{_local(approval.approved_at)}, standing until {_local(approval.expires_at)}); an empty source read "
            "and a scope that matches nothing stay held")


def status_text(status: StateStatus, *, show_ids: bool = False, notes: bool = False, now: float | None = None) -> str:
    """The state in lines: what is replicated, the last runs (`notes`: each run's notes in full), the
    failed resources, what each destination was learned not to keep and the limits it enforces (`now`:
    the time a learned limit's probe is judged at; by default the clock's)."""
    tracked, failures = status.tracked, status.failures
    lines = [f"state {status.state}: {tracked['User']} users, {tracked['Group']} groups replicated; "
             f"{len(failures)} failed"]
    for run in status.runs:
        lines += run_lines(run, notes_in_full=notes)
    if not notes and any(run_notes(run)[1] for run in status.runs):
        lines.append("(the notes in full: status --notes, or status --output json)")
    for failure in failures:
        lines.append(f"failed {failure.kind} {failed_name(failure, show_ids=show_ids)} (attempts {failure.attempts}): "
                     f"{failure.error}")
    for destination, kind, path, how, objects, learned_at in status.keeps:
        learned = _local(learned_at)
        lines.append(f"destination {destination} {loss_words(path, how)} of {kind.lower()}s (seen on {objects}, "
                     f"learned {learned}): not rewritten unless the source value changes")
    for destination, name, value, learned_at in status.limits:
        learned = _local(learned_at)
        if name == MEMBERS_PER_REQUEST_RAISED:
            lines.append(f"destination {destination} took {value} members in one request when its member limit "
                         f"was probed (the limit raised {learned}): each cycle tries sync.member_chunk again "
                         "(a 400 about the count learns the limit anew)")
        else:
            lines.append(f"{member_limit_words(value, learned, f'destination {destination}')}: "
                         f"{learned_limit_use(LearnedLimit(value, learned_at), time.time() if now is None else now)}")
    if status.approval is not None:
        lines.append(f"removals approved: {approval_words(status.approval)}")
    return "\n".join(lines)
