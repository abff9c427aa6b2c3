"""PingOne populations by name (`Populations`): ids differ per environment, so a user's population
travels as its name, through the configured map (the other side's name -> ours), and only when both
sides are PingOne."""

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
