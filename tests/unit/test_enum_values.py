"""The enums' values are the strings the state stores and the reports, logs and metrics print, and the
numbers the process exits with: pinned here, so that changing one is a visible format change."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from enum import Enum
from pathlib import Path

import msgspec
import pytest

from replicator import cli, daemon
from replicator.cycle import FULL, CycleResult
from replicator.exit_codes import ExitCode
from replicator.logs import JsonFormatter
from replicator.pipeline import canonical, plan
from replicator.pipeline.canonical import Kind
from replicator.pipeline.outcome import COMPLETED, Outcome
from replicator.pipeline.plan import Action, Step
from replicator.report import report_json, report_text
from replicator.state import open_state

STRING_ENUMS: list[type[Enum]] = [Kind, Action, Outcome]


def test_kinds_are_the_scim_resource_types() -> None:
    """Kind's values are the SCIM resource type names; USER, GROUP and KINDS are its members."""
    assert {k.name: k.value for k in Kind} == {"USER": "User", "GROUP": "Group"}
    assert canonical.USER is Kind.USER and canonical.GROUP is Kind.GROUP
    assert canonical.KINDS == (Kind.USER, Kind.GROUP)


def test_actions_are_the_planned_changes_as_printed() -> None:
    """Action's values are the words plans print and counts are named after (`create_planned`)."""
    assert {a.name: a.value for a in Action} == {
        "CREATE": "create", "PATCH": "patch", "RECORD": "record", "NOTHING": "nothing", "SKIP": "skip",
        "DELETE": "delete", "DISABLE": "disable",
    }
    assert list(Action) == [plan.CREATE, plan.PATCH, plan.RECORD, plan.NOTHING, plan.SKIP, plan.DELETE, plan.DISABLE]
    assert all(getattr(plan, action.name) is action for action in Action)


def test_outcomes_are_the_recorded_words() -> None:
    """Outcome's values are what `runs.outcome`, the reports and the metrics hold; ok, partial and held
    are the outcomes of a cycle that completed."""
    assert {o.name: o.value for o in Outcome} == {
        "OK": "ok", "PARTIAL": "partial", "HELD": "held", "INTERRUPTED": "interrupted", "FAILED": "failed",
    }
    assert COMPLETED == ("ok", "partial", "held")


def test_exit_codes_are_the_documented_numbers() -> None:
    """ExitCode's numbers are README's; the cli's and the daemon's EXIT_* names are its members."""
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0, "PARTIAL": 1, "USAGE": 2, "FATAL": 3, "HELD": 4, "MISSING_EXTRA": 5, "INTERRUPTED": 130,
    }
    assert cli.EXIT_MISSING_EXTRA == ExitCode.MISSING_EXTRA
    assert (cli.EXIT_OK, cli.EXIT_PARTIAL, cli.EXIT_USAGE, cli.EXIT_FATAL, cli.EXIT_HELD, cli.EXIT_INTERRUPTED) == (
        ExitCode.OK, ExitCode.PARTIAL, ExitCode.USAGE, ExitCode.FATAL, ExitCode.HELD, ExitCode.INTERRUPTED)
    assert (daemon.EXIT_OK, daemon.EXIT_INTERRUPTED) == (ExitCode.OK, ExitCode.INTERRUPTED)


@pytest.mark.parametrize("member", [m for enum in STRING_ENUMS for m in enum], ids=str)
def test_a_string_member_prints_and_encodes_as_its_value(member: Enum) -> None:
    """f-strings, str(), %s, padded formats, json and msgspec give the bare value (repr() alone does not)."""
    value = member.value
    assert type(value) is str
    percent = "%s" % member  # noqa: UP031 - how logging formats its arguments
    assert (f"{member}", str(member), percent, f"{member:<8}|") == (value, value, value, f"{value:<8}|")
    assert json.dumps({member: member}) == json.dumps({value: value})
    assert msgspec.json.encode({member: member}) == msgspec.json.encode({value: value})
    assert member == value and hash(member) == hash(value)  # a plain string from the state finds it


@pytest.mark.parametrize("code", list(ExitCode), ids=str)
def test_an_exit_code_prints_and_encodes_as_its_number(code: ExitCode) -> None:
    """f-strings, str(), %d and json give the bare number."""
    number = code.value
    percent = "%d" % code  # noqa: UP031 - how logging formats its arguments
    assert (f"{code}", str(code), percent, json.dumps({"exit_code": code})) == (
        str(number), str(number), str(number), json.dumps({"exit_code": number}))


async def test_the_state_stores_kinds_and_outcomes_as_plain_text(tmp_path: Path) -> None:
    """A row's kind and a run's outcome are written as the text of their value (the state file's format)."""
    path = tmp_path / "state.db"
    async with open_state(path) as store:
        await store.record_success(Kind.GROUP, "g-1", dest_id="d-1", digest="0" * 32, canonical={})
        run_id = await store.runs.start_run(FULL, False)
        await store.runs.finish_run(run_id, Outcome.HELD, {"outcome": Outcome.HELD})
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT kind, typeof(kind) FROM resources").fetchall() == [("Group", "text")]
        assert db.execute("SELECT outcome, typeof(outcome), counts FROM runs").fetchall() == [
            ("held", "text", '{"outcome": "held"}')]


def _result() -> CycleResult:
    step = Step(Action.CREATE, Kind.USER, "s-1", "alice", reason="changed in the source")
    return CycleResult(mode=FULL, dry_run=True, counts=Counter({"create_planned": 1}), changes=[step],
                       outcome=Outcome.PARTIAL)


def test_reports_print_the_values() -> None:
    """A plan's text report and its JSON (as `--output json` prints it) show the values, byte for byte."""
    text = report_text(_result())
    assert text.splitlines()[:2] == ["plan (dry run, nothing written), partial in 0.00s: create_planned 1",
                                     "create  User  alice  (changed in the source)"]
    printed = json.loads(json.dumps(report_json(_result())))
    assert (printed["outcome"], printed["changes"][0]["action"], printed["changes"][0]["kind"]) == (
        "partial", "create", "User")


def test_logs_and_metrics_show_the_values() -> None:
    """A JSON log line and the cycle counter's labels carry the values, not the members' names."""
    record = logging.LogRecord("replicator", logging.INFO, __file__, 1, "%s cycle %s", (FULL, Outcome.HELD), None)
    record.fields = {"outcome": Outcome.HELD, "kind": Kind.USER}
    line = JsonFormatter().format(record)
    assert '"msg": "full cycle held", "outcome": "held", "kind": "User"}' in line
    metrics = daemon.Metrics()
    metrics.record(_result(), [])
    assert 'scimrep_cycles_total{mode="full",outcome="partial"} 1.0' in metrics.render().decode()
