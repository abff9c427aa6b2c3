"""What a destination keeps of a multi-valued attribute (only the first email) is learned, applied and
reported the same whether its writes travel in SCIM Bulk or one request each: the same scenario with
Bulk on and off ends with the same outcomes, counts, notes and destination state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from replicator.app import replicate
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing import Quirks
from tests.integration.test_destination_keeps import servers

USERS = 6


async def first_email_scenario(tmp: Path, *, bulk: bool, patch_answers: bool, later: bool) -> dict[str, Any]:
    """Six users created with both emails, or (`later`) with one, then given the second in the source
    (PATCHes); then a --full; against a destination keeping only the first email (PATCHes answered with the resource or
    not): each cycle's outcome, counts, writes and notes, the single-request and Bulk writes, and the
    emails the destination holds."""
    quirks = Quirks(keeps_first_value_of={"emails"}, bulk_max_operations=50 if bulk else 0,
                    patch_returns_resource=patch_answers)
    async with servers(tmp, quirks, USERS) as s:
        config = msgspec.structs.replace(s.config, concurrency=1)  # one worker: a batch holds every step
        second = {}
        for source_user in s.source.users.values() if later else ():
            source_user["emails"], second[source_user["id"]] = source_user["emails"][:1], source_user["emails"][1]
        cycles = [await replicate(config, mode=INCREMENTAL, dry_run=False)]
        for source_id, email in second.items():
            s.source.users[source_id]["emails"].append(email)
        cycles.append(await replicate(config, mode=INCREMENTAL, dry_run=False))
        cycles.append(await replicate(config, mode=FULL, dry_run=False))
        log = s.destination.request_log
        return {
            "cycles": [(c.outcome, dict(c.counts), sorted(c.notes)) for c in cycles],
            "single": sum(1 for method, path in log if method in ("POST", "PATCH") and not path.endswith("/Bulk")),
            "bulk": sum(1 for method, path in log if path.endswith("/Bulk")),
            "held": sorted((u["userName"], [e["value"] for e in u.get("emails", [])])
                           for u in s.destination.users.values()),
        }


@pytest.mark.parametrize("patch_answers", [True, False], ids=["patch-answered", "patch-204"])
async def test_a_destination_keeping_one_email_is_learned_alike_with_bulk_on_and_off(
        tmp_path: Path, patch_answers: bool) -> None:
    """Bulk on and off: the same outcomes, counts, notes and destination emails; the PATCH answers (or,
    answered 204, the --full's read-back) teach that the destination keeps fewer emails, and the --full
    after the answered PATCHes writes nothing."""
    single = await first_email_scenario(tmp_path / "single", bulk=False, patch_answers=patch_answers, later=True)
    bulk = await first_email_scenario(tmp_path / "bulk", bulk=True, patch_answers=patch_answers, later=True)
    assert single["bulk"] == 0 and single["single"] == 2 * USERS + (0 if patch_answers else USERS), single
    assert bulk["single"] == 0 and bulk["bulk"] == (2 if patch_answers else 3), bulk  # every write in Bulk
    assert bulk["cycles"] == single["cycles"]
    assert bulk["held"] == single["held"] == [(f"user{i}", [f"u{i}@work.example"]) for i in range(USERS)]
    created, patched, full = single["cycles"]
    assert created[:2] == ("ok", {"created": USERS}) and patched[:2] == ("ok", {"updated": USERS}), single
    learned = "keeps fewer values of emails (6 users, learned now)"
    assert any(learned in note for note in (patched if patch_answers else full)[2]), (patched, full)
    assert full[:2] == ("ok", {"unchanged" if patch_answers else "updated": USERS}), full  # rewrote none / each once


async def test_creates_of_both_emails_teach_one_email_kept_alike_with_bulk_on_and_off(tmp_path: Path) -> None:
    """Users created with both emails (in one Bulk request, or one POST each): the create answers teach
    that the destination keeps fewer emails, alike, and the --full after it writes nothing either way."""
    single = await first_email_scenario(tmp_path / "single", bulk=False, patch_answers=True, later=False)
    bulk = await first_email_scenario(tmp_path / "bulk", bulk=True, patch_answers=True, later=False)
    assert (single["single"], single["bulk"], bulk["single"], bulk["bulk"]) == (USERS, 0, 0, 1)
    assert bulk["cycles"] == single["cycles"] and bulk["held"] == single["held"]
    created, unchanged, full = single["cycles"]
    assert any("keeps fewer values of emails (6 users, learned now)" in note for note in created[2]), created
    assert unchanged[:2] == full[:2] == ("ok", {"unchanged": USERS}), (unchanged, full)
