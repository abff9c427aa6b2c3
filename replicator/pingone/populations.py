"""PingOne populations by name (`Populations`): ids differ per environment, so a user's population
travels as its name, through the configured map (the other side's name -> ours), and only when both
sides are PingOne. A dynamic group's userFilter names populations by id: the destination's populations,
linked to the source's (`replicates_from`), translate those ids both ways through the same names."""

from __future__ import annotations

from replicator.pingone.platform import PlatformApi
from replicator.scim.paging import ReadReport


class Populations:
    """One environment's populations, and how the other side's names map onto them."""

    def __init__(self, *, replicated: bool, rename: dict[str, str], default: str | None) -> None:
        self.replicated = replicated
        self._rename = dict(rename)  # the other side's population name -> ours
        self._default = default  # ours, for a name we lack (None: the environment's default population)
        self._names: dict[str, str] = {}  # id -> name
        self._default_id: str | None = None
        self.source: Populations | None = None  # the source's, when we are its destination (userFilter ids)

    async def learn(self, api: PlatformApi) -> None:
        """Read the environment's populations: names, ids, the default one."""
        report = ReadReport(kind=f"{api.name} populations")
        names: dict[str, str] = {}
        async for page in api.pages("populations", report):
            for population in page:
                names[str(population["id"])] = str(population.get("name", ""))
                if population.get("default"):
                    self._default_id = str(population["id"])
        self._names = names

    def names(self) -> dict[str, str] | None:
        """Population id -> the name the other side knows it by (None: populations are not replicated)."""
        if not self.replicated:
            return None
        ours_to_theirs = {ours: theirs for theirs, ours in self._rename.items()}
        return {pid: ours_to_theirs.get(name, name) for pid, name in self._names.items()}

    def id_for(self, name: str | None) -> str | None:
        """Our population for the other side's population name: mapped, else the same name, else the
        configured default, else the environment's default population. None for no name (a user then
        lands in the default population; a group is environment-wide)."""
        if not self.replicated or not name:
            return None
        by_name = {pname: pid for pid, pname in self._names.items()}
        for candidate in (self._rename.get(name, name), self._default):
            if candidate and candidate in by_name:
                return by_name[candidate]
        return self._default_id

    def replicates_from(self, source: Populations) -> None:
        """We are the destination of `source`: userFilter population ids translate between us."""
        self.source = source

    def _ours_by_name(self, name: str) -> str | None:
        """Our population for the other side's name: mapped, else the same name; never a default (a
        filter naming another population than the source's would match other users)."""
        by_name = {pname: pid for pid, pname in self._names.items()}
        return by_name.get(self._rename.get(name, name))

    def filter_ids(self) -> dict[str, str]:
        """For the userFilters we are sent: the source's population id -> ours, for each source
        population we have by name (not linked: our own ids, as they are)."""
        if self.source is None:
            return {pid: pid for pid in self._names}
        theirs = self.source.names() or {}
        return {sid: ours for sid, name in theirs.items() if (ours := self._ours_by_name(name))}

    def filter_ids_back(self) -> dict[str, str]:
        """For the userFilters we read: our population id -> the source's (each of ours that one source
        population maps to; when several do, the first by id). Not linked: none."""
        back: dict[str, str] = {}
        for sid, ours in sorted(self.filter_ids().items()):
            back.setdefault(ours, sid)
        return back if self.source is not None else {}

    def names_for_refusal(self, source_id: str) -> tuple[str | None, str | None]:
        """(the source's name of `source_id`, the name looked for here), for a refusal's words."""
        name = (self.source.names() or {}).get(source_id) if self.source is not None else self._names.get(source_id)
        return name, (self._rename.get(name, name) if name is not None else None)
