"""What the stages of one cycle share (`CycleContext`): its inputs, its result, the few facts one stage
hands another (how the reads went, which objects moved), and the stages themselves.

A stage owns its own working state (the waiters, the Bulk trial, the listings, the removal verdicts);
what is here is what several stages read or write. Cycle (runner.py) builds one context per cycle and
wires the stages into it; no stage builds another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from replicator.config import Config, SideConfig, SyncConfig, compile_rules
from replicator.cycle.result import FULL, CycleResult
from replicator.directory import Directory
from replicator.pipeline import mapping
from replicator.pipeline.canonical import GROUP, KINDS, USER
from replicator.pipeline.mapping import Rules
from replicator.pipeline.scope import Scope
from replicator.state import StateStore

if TYPE_CHECKING:
    from replicator.cycle.bulk import BulkWriter
    from replicator.cycle.keeps import KeepsLearner
    from replicator.cycle.listing import DestinationIndex
    from replicator.cycle.planner import Planner
    from replicator.cycle.read import SourceReader
    from replicator.cycle.recorder import Recorder
    from replicator.cycle.removals import Removals
    from replicator.cycle.sinks import StepSink
    from replicator.cycle.waiters import Waiters
    from replicator.cycle.workers import Workers
    from replicator.cycle.writer import StepWriter

log = logging.getLogger("replicator.cycle")

_GROUP_PAGE = 50
_GROUP_PAGE_BYTES = 2_000_000  # about 15k members


def paging(side: SideConfig, kind: str) -> dict[str, Any]:
    """How to page a kind: groups carry their members, so they are read in pages of at most
    _GROUP_PAGE groups and about _GROUP_PAGE_BYTES, so that a page of large groups does not fill memory."""
    if kind == GROUP:
        return {"page_size": min(side.page_size, _GROUP_PAGE), "max_page_bytes": _GROUP_PAGE_BYTES}
    return {"page_size": side.page_size}


@dataclass
class ReadProgress:
    """How the reads of this cycle went, as later stages need to know it."""

    complete: dict[str, bool] = field(default_factory=lambda: {USER: False, GROUP: False})
    out_of_scope: Counter[str] = field(default_factory=Counter)  # objects read and kept out, by kind
    group_names_read: set[str] = field(default_factory=set)  # of scope.group_names, those the source has
    scope_problem: str | None = None  # the scope could not be learned: nothing may be removed
    halted: str | None = None  # a scope that matches nothing: the cycle stopped before writing
    # what the destination cannot hold of the objects read (`Directory.storable`): attribute -> objects, by kind
    not_kept: dict[str, Counter[str]] = field(default_factory=lambda: {USER: Counter(), GROUP: Counter()})


@dataclass
class Moves:
    """Objects that changed destination id this cycle, and destination ids that stopped naming ours:
    groups and users naming a re-created object are planned again; groups naming a deleted one lose
    that member at the end. `removed_dest_ids`: this cycle's deletions and disables (`Removals.note_removed`),
    joined at the end by those of earlier cycles that members the membership guard held name
    (`Removals.drop_removed_members`)."""

    count: int = 0  # objects that got another destination id (re-created, taken over)
    taken_over: set[tuple[str, str]] = field(default_factory=set)  # (kind, source id) another source object took
    recreated_dest_ids: set[str] = field(default_factory=set)
    removed_dest_ids: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in KINDS})
    replanned_for: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in KINDS})


@dataclass(eq=False)
class CycleContext:
    """One cycle's inputs, result and shared facts; the stage fields are wired by `Cycle`."""

    config: Config
    source: Directory
    destination: Directory
    store: StateStore
    mode: str
    dry_run: bool
    stop: asyncio.Event  # set: stop reading, finish in-flight calls, record, return
    result: CycleResult
    # the sync settings; an operator's approval (`approve`) raises the membership guard's limits in them
    # for one cycle, and the guard on objects' limits in `removal_policy` (runner._take_approval)
    policy: SyncConfig = field(init=False)
    removal_policy: SyncConfig = field(init=False)
    scope: Scope = field(init=False)
    rules: dict[str, Rules] = field(init=False)
    rules_key: dict[str, bytes] = field(init=False)
    started_at: float = field(default_factory=time.time)  # written since then: written by this cycle
    recovering: bool = False  # the previous run did not finish: list the destination to adopt
    fatal: BaseException | None = None  # an error that stops the cycle (raised once the workers stopped)
    reads: ReadProgress = field(default_factory=ReadProgress)
    moves: Moves = field(default_factory=Moves)
    # the stages (see runner.py)
    reader: SourceReader = field(init=False)
    listing: DestinationIndex = field(init=False)
    planner: Planner = field(init=False)
    waiters: Waiters = field(init=False)
    workers: Workers = field(init=False)
    sink: StepSink = field(init=False)
    writer: StepWriter = field(init=False)
    bulk: BulkWriter = field(init=False)
    recorder: Recorder = field(init=False)
    removals: Removals = field(init=False)
    keeps: KeepsLearner = field(init=False)

    def __post_init__(self) -> None:
        self.policy = self.removal_policy = self.config.sync
        self.scope, self.rules = compile_rules(self.config)
        self.rules_key = {kind: mapping.rules_key(self.rules[kind]) for kind in (USER, GROUP)}

    @property
    def full(self) -> bool:
        return self.mode == FULL

    def halt(self, problem: str) -> None:
        """Stop the cycle before it writes what a scope mistake would: the outcome is held (exit 4)."""
        if self.policy.allow_mass_delete:
            self.result.notes.append(f"{problem} (going on: mass removal allowed)")
            return
        self.reads.halted = problem
        self.result.notes.append(f"{problem}: stopped before any change; fix the scope (only if every "
                                 "replicated object is meant to leave it: --allow-mass-delete)")
        log.error("scope matches nothing: %s", problem)

    def match_attribute(self, kind: str) -> str:
        return self.policy.user_match_attribute if kind == USER else self.policy.group_match_attribute
