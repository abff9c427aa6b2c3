"""`scim-replicator approve`: an operator's approval of held removals for the next cycle (`approve`), or
its withdrawal (`approve --withdraw`), written to the state file beside a running daemon; the command
line (cli.py) checks the state file exists and says why nothing was approved."""

from __future__ import annotations

import dataclasses
import json

from replicator.app import approve_removals, read_status, withdraw_approval
from replicator.config import Config
from replicator.report import approval_words


async def withdraw(config: Config, output: str) -> None:
    """`approve --withdraw`: the standing approval of removals no longer applies; says which, or none."""
    approval = await withdraw_approval(config.state)
    if output == "json":
        print(json.dumps({"withdrawn": dataclasses.asdict(approval) if approval else None}, indent=2))
    else:
        print(f"withdrawn: {approval_words(approval)}" if approval else "no approval was standing")


async def approve(config: Config, up_to: int | None, members_up_to: int | None, minutes: int,
                  output: str) -> str | None:
    """`approve`: the next cycle may carry out up to `up_to` removals and `members_up_to` member removals
    the guards would hold (default: as many as the last run held); says what it approved. Returns why
    nothing was approved, or None."""
    replaced = (await read_status(config.state)).approval
    approval, last = await approve_removals(config.state, up_to, members_up_to, minutes)
    if approval is None:
        held = "no run has ended yet" if last is None else f"the last run (#{last.id}, {last.outcome}) held no removals"
        return (f"nothing to approve: {held}; name how many with --up-to N (users or groups) or "
                "--members-up-to M (a group's members)")
    words = approval_words(approval)
    if output == "json":
        print(json.dumps({"approval": {**dataclasses.asdict(approval), "says": words},
                          "replaced": dataclasses.asdict(replaced) if replaced else None}, indent=2))
    else:
        print(f"approved: {words}")
        if replaced is not None:
            print(f"(it replaces the approval standing before it, which said: {approval_words(replaced)})")
    return None
