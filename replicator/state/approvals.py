"""An operator's approvals of held removals (`removal_approvals`), reached as `store.approvals`: `approve`
adds one (up to how many removals, until when); the next cycle that starts while it stands takes it
(`take`: it applies to that cycle only, which marks it used, with every other standing one); `approve
--withdraw` withdraws it (`withdraw`: used by run 0); `status` shows the one standing (`standing`). What an approval lets through is pipeline/approvals' to decide.
Rows used or expired are kept 30 days, for the record, then pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicator.state.connection import Room, state_errors_named

_KEPT_SECONDS = 30 * 24 * 3600.0  # used or expired approvals are pruned after this


@dataclass(frozen=True)
class Approval:
    """Removals approved for the next cycle: at most `up_to` removals of one kind (the guard on objects)
    and at most `members_up_to` member removals of one group (the membership guard), 0 for a guard not
    raised; given at `approved_at`, standing until `expires_at` (epoch seconds)."""

    id: int
    up_to: int
    members_up_to: int
    approved_at: float
    expires_at: float


@state_errors_named
class RemovalApprovals(Room):
    """The approvals given, used and standing."""

    async def approve(self, up_to: int, members_up_to: int, *, now: float, expires_at: float) -> Approval:
        """Record an approval of up to `up_to` removals and `members_up_to` member removals, standing
        until `expires_at`."""
        async with self._lock:
            await self._flush()
            await self._db.execute("DELETE FROM removal_approvals WHERE MAX(expires_at, COALESCE(used_at, 0)) < ?",
                                   (now - _KEPT_SECONDS,))
            cursor = await self._db.execute(
                "INSERT INTO removal_approvals (up_to, members_up_to, approved_at, expires_at) VALUES (?, ?, ?, ?)",
                (up_to, members_up_to, now, expires_at))
            approval_id = int(cursor.lastrowid or 0)
            await cursor.close()
            await self._commit()
        return Approval(approval_id, up_to, members_up_to, now, expires_at)

    async def standing(self, now: float) -> Approval | None:
        """The newest approval not used and not expired at `now`, if any."""
        async with self._lock:
            async with self._db.execute(
                "SELECT id, up_to, members_up_to, approved_at, expires_at FROM removal_approvals "
                "WHERE used_by_run IS NULL AND expires_at > ? ORDER BY id DESC LIMIT 1", (now,),
            ) as cursor:
                row = await cursor.fetchone()
        return Approval(int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4])) if row else None

    async def withdraw(self, now: float) -> Approval | None:
        """The standing approval, withdrawn (with every other standing one: marked used by run 0)."""
        return await self.take(now, 0)

    async def take(self, now: float, run_id: int) -> Approval | None:
        """The standing approval, now used by the run `run_id`, as is every other standing one (an
        approval applies to one cycle: the next that starts)."""
        approval = await self.standing(now)
        if approval is None:
            return None
        async with self._lock:
            await self._flush()
            await self._db.execute(
                "UPDATE removal_approvals SET used_by_run = ?, used_at = ? WHERE used_by_run IS NULL AND expires_at > ?",
                (run_id, now, now))
            await self._commit()
        return approval
