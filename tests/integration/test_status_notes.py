"""`status` keeps each run on one readable line: one note by its first clause, several by their count;
`status --notes` and `status --output json` give every note in full."""

from __future__ import annotations

import json
from pathlib import Path

from replicator.report import notes_summary
from replicator.state import open_state
from tests.integration.test_cli import cli

READ_PATHS = [  # the notes every cycle of two PingOne sides records
    "source: PingOne Platform API (users, groups, memberships, nesting, populations by name)",
    "source: read paths: users through the Platform API (cursor paging; SCIM startIndex paging does not advance); "
    "groups, members and nesting through the Platform API (no SCIM /Groups)",
    "destination: PingOne Platform API (users, groups, memberships, nesting, populations by name)",
    "destination: read paths: users through the Platform API (cursor paging; SCIM startIndex paging does not "
    "advance); groups, members and nesting through the Platform API (no SCIM /Groups)",
]
UNREACHABLE = ("destination unreachable: 16 operations in a row failed after retries (last: destination "
               "https://scim.example/v2: POST /v2/Users: the server's certificate is not trusted (CERTIFICATE_VERIFY_"
               "FAILED: unable to get local issuer certificate); set destination.ca_bundle to a PEM file with the CA "
               "that signed it (destination.verify_tls = false skips the check: for testing only))")
LISTING = ("destination User listing incomplete: page 3: GET /v2/Users answered 503; page 4: GET /v2/Users "
           "answered 503")


def test_one_note_shows_its_first_clause_cut_short_and_several_their_count() -> None:
    """A run's notes on its line: none, one (its first clause, at most 72 characters), several (a count)."""
    assert notes_summary([]) == ""
    assert notes_summary(["3 User removals held: the source read was not complete"]) == \
        "; note: 3 User removals held: the source read was not complete"
    assert notes_summary([LISTING]) == "; note: destination User listing incomplete: page 3: GET /v2/Users answered 503"
    shown = notes_summary([UNREACHABLE])
    assert shown.startswith("; note: destination unreachable: 16 operations") and shown.endswith(" …")
    assert len(shown) <= len("; note: ") + 72
    assert notes_summary(READ_PATHS) == "; 4 notes"


async def test_status_keeps_a_run_on_one_line_and_notes_shows_them_in_full(tmp_path: Path) -> None:
    """Three runs with notes (PingOne's read paths, a fatal error, a listing cut short): `status` prints
    one short line per run and says where the notes are; `--notes` and `--output json` have each in full."""
    state = tmp_path / "s.db"
    async with open_state(state) as store:
        for outcome, notes, extra in (("ok", READ_PATHS, {}), ("failed", [UNREACHABLE, "failed during users"],
                                                               {"phase": "users"}), ("partial", [LISTING], {})):
            run = await store.runs.start_run("incremental", False)
            await store.runs.finish_run(run, outcome, {"counts": {"created": 2}, "notes": notes, **extra})

    code, out, err = await cli("status", "--state", str(state))
    assert code == 0, err
    runs = [line for line in out.splitlines() if line.startswith("run ")]
    assert [line.split(": ", 1)[1] for line in runs] == [
        f"created 2; note: {LISTING.split('; ', 1)[0]}",
        "created 2; note: destination unreachable: 16 operations in a row failed after retries …",
        "created 2; 4 notes",
    ]
    assert " incremental failed during users: " in runs[1]
    assert "(the notes in full: status --notes, or status --output json)" in out.splitlines()
    assert "read paths" not in out and "ca_bundle" not in out

    code, out, err = await cli("status", "--state", str(state), "--notes")
    assert code == 0, err
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("    note: ")] == [
        f"    note: {note}" for note in (LISTING, UNREACHABLE, *READ_PATHS)]
    assert all(line.endswith(": created 2") for line in lines if line.startswith("run "))

    code, out, err = await cli("status", "--state", str(state), "--output", "json")
    assert code == 0, err
    assert [run["counts"]["notes"] for run in json.loads(out)["runs"]] == [
        [LISTING], [UNREACHABLE, "failed during users"], READ_PATHS]
