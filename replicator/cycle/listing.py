"""The destination as a cycle knows it (`DestinationIndex`): its listings (full mode, a first run, a
run after a crash, or a search that does not serve) and the lookups a create makes before it posts, so
that an object already there is adopted, never duplicated; an object left under a temporary name by a
swap whose state was lost is adopted by the source object it is (`leftover_claims`)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

from replicator.cycle.context import CycleContext, paging
from replicator.cycle.work import Listing
from replicator.errors import AuthError, BadRequestError, ConflictError, NotFoundError, ScimError, UnprovenAbsenceError
from replicator.pipeline.canonical import GROUP, USER, canonicalise, match_value
from replicator.pipeline.outcome import Outcome
from replicator.pipeline.plan import RECREATE_REASON, Step
from replicator.pipeline.renames import NAME_ATTRIBUTE, Leftover, leftover, leftover_claims, may_claim
from replicator.scim.filters import render
from replicator.scim.paging import ReadReport

log = logging.getLogger("replicator.cycle")


class DestinationIndex:
    """Lists the destination and looks objects up in it, by match key."""

    def __init__(self, cx: CycleContext) -> None:
        self.cx = cx
        self.listings: dict[str, Listing | None] = {USER: None, GROUP: None}
        self._lock = asyncio.Lock()
        self._relisted: set[str] = set()  # kinds listed again this cycle to find objects a search could not
        self.leftovers: dict[str, list[Leftover]] = {USER: [], GROUP: []}  # listed under a temporary name

    async def list_destination(self, kind: str) -> Listing:
        """List the destination's objects of `kind` (`read_listing`), and note how it went (`noted`)."""
        return self.noted(*await self.read_listing(kind))

    async def read_listing(self, kind: str) -> tuple[Listing, ReadReport]:
        """The destination's objects of `kind`, listed into the cycle's scratch tables; the listing
        and the read's report (in the cycle's reads from the start)."""
        cx = self.cx
        report = ReadReport(kind=f"destination {kind}")
        cx.result.reads[report.kind] = report
        with_forms = cx.full
        attribute = cx.match_attribute(kind)
        await cx.store.scratch.forget_listing(kind)
        by_name = attribute.lower() == NAME_ATTRIBUTE[kind].lower()  # (temporary names are given to the name)
        self.leftovers[kind] = []
        count = 0
        pages = cx.destination.iter_pages(kind, report, **paging(cx.config.destination, kind),
                                          read_before=lambda ids: cx.store.scratch.listed_before(kind, ids))
        try:
            async with aclosing(pages):
                async for page in pages:
                    listed = []
                    for resource in page:
                        canonical = canonicalise(resource, kind)
                        key = match_value(canonical, attribute)
                        listed.append((resource["id"], None if key is None else key.casefold(),
                                       canonical if with_forms else None))
                        if by_name and key is not None and (left := leftover(resource["id"], key)) is not None:
                            self.leftovers[kind].append(left)
                    await cx.store.scratch.note_listed(kind, listed)
                    count += len(listed)
        except AuthError:
            raise
        except ScimError as exc:
            log.warning("destination %s listing failed, falling back to lookups: %s", kind, exc)
        return Listing(complete=report.complete, with_forms=with_forms, listed=count), report

    def noted(self, listing: Listing, report: ReadReport) -> Listing:
        """A listing as its kind's phase takes it up: an incomplete one is noted, and makes a full cycle
        partial (objects it left out were not compared with the destination). Not before that phase:
        a cycle that stops earlier (a scope that matches nothing) says nothing of a listing it never used."""
        if not report.complete:
            self.cx.result.notes.append(f"{report.kind} listing incomplete: {'; '.join(report.problems) or 'short read'}")
            if self.cx.full:
                self.cx.result.outcome = Outcome.PARTIAL
        return listing

    async def listed_once(self, kind: str) -> Listing:
        """The listing of `kind`, made now if this cycle has none."""
        async with self._lock:
            if self.listings[kind] is None:
                self.listings[kind] = await self.list_destination(kind)
        listing = self.listings[kind]
        assert listing is not None
        return listing

    async def absent_from_listing(self, creates: list[tuple[str, str, dict[str, Any]]]) -> set[str]:
        """Source ids of these new objects ((kind, source id, form)) whose match key a complete
        listing of the destination lacks."""
        absent: set[str] = set()
        for kind in {kind for kind, _, _ in creates}:
            dest = self.listings[kind]
            if dest is None or not dest.complete:
                continue
            if not dest.listed:
                absent.update(source_id for kind_, source_id, _ in creates if kind_ == kind)
                continue
            keys = {source_id: match_value(form, self.cx.match_attribute(kind))
                    for kind_, source_id, form in creates if kind_ == kind}
            folded = {sid: key.casefold() for sid, key in keys.items() if key is not None}
            listed = await self.cx.store.scratch.listed_keys(kind, list(folded.values()))
            leftovers = self.leftovers[kind]  # (one may be the object: its create looks first)
            absent.update(sid for sid, key in folded.items()
                          if key not in listed and not (leftovers and may_claim(leftovers, sid, key)))
        return absent

    async def find_existing(self, step: Step, *, fresh: bool = False) -> dict[str, Any] | None:
        """The destination object this new one should adopt, or None when it does not exist.

        `fresh`: do not trust the listing made at the start of the cycle (a POST may have landed since).
        """
        dest = self.listings[step.kind]
        key = match_value(step.desired or {}, self.cx.match_attribute(step.kind))
        if dest is not None and dest.complete and not fresh and key is not None:
            known, existing = await self._from_listing(step.kind, dest, key)
            if known:
                return existing or await self._leftover_of(step, key)
        return await self._lookup(step, required=False) or await self._leftover_of(step, key)

    async def _leftover_of(self, step: Step, key: str | None) -> dict[str, Any] | None:
        """The object a swap whose state was lost left under a temporary name that is this new one
        (`leftover_claims`; never one a state row names), to adopt (and rename); None when there is
        none. Two: the create is refused, naming them, rather than guessed or posted beside them."""
        kind, cx = step.kind, self.cx
        leftovers = self.leftovers[kind]
        if not leftovers or key is None or not may_claim(leftovers, step.source_id, key):
            return None
        unowned = [left for left in leftovers if not await cx.store.forms.owners(kind, left.dest_id)]
        held = {left.dest_id for left in unowned if left.old in await cx.store.scratch.listed_keys(kind, [left.old])}
        claims = leftover_claims(unowned, step.source_id, key, lambda left: left.dest_id in held)
        if len(claims) > 1:
            raise UnprovenAbsenceError(
                f"not created: the destination holds {', '.join(repr(left.name) for left in claims)}, left "
                f"under temporary names by renames whose state was lost, and more than one may be {key!r}: "
                "refusing to guess (rename or remove the ones that are not it on the destination)")
        if not claims:
            return None
        if await self._in_source(kind, claims[0].name):
            return None  # a source object of its own, which its own create adopts
        log.info("%s %s: adopting %r, left under a temporary name by a swap whose state was lost",
                 kind, step.label, claims[0].name)
        try:
            return await cx.destination.get(kind, claims[0].dest_id)
        except NotFoundError:
            return None

    async def _in_source(self, kind: str, name: str) -> bool:
        """Whether the source has an object whose match key is `name` (a leftover's whole temporary
        name: then it is that object's, not a leftover); a source that cannot tell refuses the claim."""
        cx = self.cx
        attribute = cx.match_attribute(kind)
        template = cx.policy.user_match_filter if kind == USER else cx.policy.group_match_filter
        try:
            found = await cx.source.find(kind, render(template, name))
        except AuthError:
            raise
        except ScimError as exc:
            raise UnprovenAbsenceError(
                f"not created: the destination holds {name!r}, left under a temporary name by a rename whose "
                f"state was lost, and the source could not be searched for an object of that name ({exc})") from exc
        return bool(exact_matches(found, kind, attribute, name))

    async def _from_listing(self, kind: str, listing: Listing, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(True, object or None) when a complete listing settles it; (False, None) when the key is
        ambiguous there (two objects share it) and a search must decide."""
        if not listing.listed:
            return True, None
        folded = key.casefold()
        listed = await self.cx.store.scratch.listed_keys(kind, [folded])
        if folded not in listed:
            return True, None  # the complete listing proves absence
        dest_id = listed[folded]
        if dest_id is None:
            return False, None
        form = (await self.cx.store.scratch.listed_forms(kind, [dest_id])).get(dest_id) if listing.with_forms else None
        if form is not None:
            return True, {"id": dest_id, **form}
        return True, await self.cx.destination.get(kind, dest_id)

    async def _lookup(self, step: Step, *, required: bool) -> dict[str, Any] | None:
        cx = self.cx
        attribute = cx.match_attribute(step.kind)
        key = match_value(step.desired or {}, attribute)
        if key is None:
            return None
        if not cx.destination.features.filter and not required:
            if cx.policy.assume_empty_destination or step.reason == RECREATE_REASON:
                return None  # (a re-create: our object vanished from the destination)
            # no search: only a complete listing can show it is not there already
            return await self._lookup_in_listing(step.kind, key, UnprovenAbsenceError(
                f"not created: the destination has no search and its {step.kind} listing is incomplete, so "
                f"nothing shows that {key!r} is not there already (a destination known to be empty: "
                "--assume-empty-destination)"))
        template = cx.policy.user_match_filter if step.kind == USER else cx.policy.group_match_filter
        try:
            found = await cx.destination.find(step.kind, render(template, key))
        except (BadRequestError, NotFoundError) as exc:
            return await self._lookup_in_listing(step.kind, key, exc)
        exact = exact_matches(found, step.kind, attribute, key)
        if len(exact) > 1:
            raise ConflictError(
                f"{len(exact)} destination {step.kind}s match {attribute}; refusing to guess", status=409
            )
        return exact[0] if exact else None

    async def lookup_after_conflict(self, step: Step, conflict: ConflictError) -> dict[str, Any] | None:
        """A create answered 409: the object is there. Searched for (unless the destination says it has
        no filters), then, when the search finds nothing, looked up in a listing, where keys compare
        without case: some servers answer an unsupported filter with an empty list, some compare a
        caseExact=false userName case-exactly."""
        if self.cx.destination.features.filter:
            existing = await self._lookup(step, required=True)
            if existing is not None:
                return existing
        key = match_value(step.desired or {}, self.cx.match_attribute(step.kind))
        return None if key is None else await self._lookup_in_listing(step.kind, key, conflict)

    async def _lookup_in_listing(self, kind: str, key: str, refusal: ScimError) -> dict[str, Any] | None:
        """The destination's search refused or could not explain `refusal`: list it once and look
        objects up there."""
        async with self._lock:
            listing = self.listings[kind]
            if (listing is None or not listing.complete) and kind not in self._relisted:
                log.warning("destination %s search did not serve (%s): listing it to find objects instead", kind, refusal)
                self._relisted.add(kind)  # once a cycle: a listing that failed again is not tried per object
                listing = self.listings[kind] = await self.list_destination(kind)
        if listing is None or not listing.complete:
            raise refusal
        known, existing = await self._from_listing(kind, listing, key)
        if not known:
            raise ConflictError(f"several destination {kind}s share {key!r}; refusing to guess", status=409)
        return existing


def exact_matches(found: list[dict[str, Any]], kind: str, attribute: str, key: str) -> list[dict[str, Any]]:
    """Of the objects a search found, those whose match attribute is `key` (ignoring case, as keys are
    compared): a filter may match more (`co`, a server's own folding)."""
    return [r for r in found if (match_value(canonicalise(r, kind), attribute) or "").casefold() == key.casefold()]
