"""Members deleted on the destination behind our back (`GoneMembers`): a group write answered 400
"member ... does not exist" names a member whose destination id the state still holds. Once a GET
confirms it is gone, the member is re-created from the form we last wrote (once per cycle, however
many groups name it) and the group write is retried with its new id, or without it when that create
fails; the cycle notes it, instead of failing the group until a `--full`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from replicator.cycle.context import CycleContext
from replicator.errors import BadRequestError, NotFoundError, ScimStatusError
from replicator.pipeline.canonical import GROUP, USER, digest
from replicator.pipeline.member_refusals import added_members, missing_members, with_members_renamed
from replicator.pipeline.plan import CREATE, RECREATE_REASON, Step, label_of

log = logging.getLogger("replicator.cycle")


class GoneMembers:
    """One cycle's members found gone from the destination, and their re-creation."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        # old destination id -> (gone from the destination, its new id when re-created)
        self._looked_up: dict[str, asyncio.Future[tuple[bool, str | None]]] = {}

    async def renamed(self, label: str, exc: BadRequestError, sent: list[dict[str, Any]]) -> dict[str, str | None]:
        """For a 400 to a group write carrying `sent`: the members it says do not exist and a GET shows
        gone, old destination id -> new one (None: not re-created); empty when there are none."""
        renamed: dict[str, str | None] = {}
        for member in missing_members(exc.detail, sent):
            value = member["value"]
            if value not in self._looked_up:
                self._looked_up[value] = asyncio.ensure_future(self._recreate(value, member.get("type")))
            gone, new_id = await self._looked_up[value]
            if gone:
                renamed[value] = new_id
        if renamed:
            again = sum(1 for new_id in renamed.values() if new_id)
            note = (f"Group {label}: {len(renamed)} member(s) had been deleted on the destination "
                    f"({', '.join(sorted(renamed))}): {again} re-created and written, "
                    f"{len(renamed) - again} left out until they exist")
            self.cx.result.notes.append(note)
            log.warning("%s", note)
        return renamed

    async def retry_patch(self, step: Step, exc: BadRequestError) -> Step | None:
        """The group PATCH again, naming gone members by their new ids (or leaving them out); None
        when the 400 is not about members gone from the destination."""
        renamed = await self.renamed(step.label, exc, added_members(step.operations))
        if not renamed or step.desired is None:
            return None
        desired, operations = with_members_renamed(step.desired, step.operations, renamed)
        # no source digest: planned again next cycle (a member left out joins once it exists)
        return dataclasses.replace(step, desired=desired, digest=digest(desired), operations=operations,
                                   source_digest=None)

    async def _recreate(self, dest_id: str, member_type: object) -> tuple[bool, str | None]:
        """Whether the object of ours that `dest_id` named is gone from the destination, and its new
        id once re-created from the form we last wrote (None when that failed)."""
        cx = self.cx
        for kind in (str(member_type),) if member_type in (USER, GROUP) else (USER, GROUP):
            owners = await cx.store.forms.owners(kind, dest_id)
            written = await cx.store.forms.canonical(kind, owners[0]) if owners else None
            if written is None:
                continue
            try:
                await cx.destination.get(kind, dest_id)
                return False, None  # still there: the 400 is about something else
            except NotFoundError:
                pass
            except ScimStatusError:
                return False, None
            cx.moves.recreated_dest_ids.add(dest_id)
            label = label_of(written, kind)
            log.warning("%s %s was deleted on the destination: re-creating it", kind, label)
            await cx.writer.run_step(Step(CREATE, kind=kind, source_id=owners[0], label=label, desired=written,
                                          digest=digest(written), reason=RECREATE_REASON))
            new_id = (await cx.store.dest_ids(kind, [owners[0]])).get(owners[0])
            return True, (new_id if new_id != dest_id else None)
        return False, None
