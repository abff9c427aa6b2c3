"""A destination's populations linked to the source's (`Populations.replicates_from`): the ids a
userFilter names translate by name, through the `populations` map, never to a default population."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from replicator.pingone.platform import PlatformApi
from replicator.pingone.populations import Populations
from replicator.scim.paging import ReadReport


class _Listing:
    """What `Populations.learn` asks of a PlatformApi: its name and the populations' pages."""

    def __init__(self, name: str, populations: list[dict[str, Any]]) -> None:
        self.name = name
        self.populations = populations

    async def pages(self, collection: str, report: ReadReport) -> AsyncIterator[list[dict[str, Any]]]:
        assert collection == "populations"
        yield self.populations


async def _learned(name: str, populations: dict[str, str], *, rename: dict[str, str] | None = None,
                   default: str | None = None) -> Populations:
    learned = Populations(replicated=True, rename=rename or {}, default=default)
    listing = [{"id": pid, "name": pname, "default": pname == "Default"} for pid, pname in populations.items()]
    await learned.learn(cast(PlatformApi, _Listing(name, listing)))
    return learned


async def test_filter_ids_translate_by_name_both_ways_and_never_to_a_default() -> None:
    source = await _learned("source", {"s-def": "Default", "s-staff": "Staff", "s-con": "Contractors",
                                       "s-temp": "Temps", "s-intern": "Interns"})
    destination = await _learned("destination", {"d-def": "Default", "d-staff": "Staff", "d-part": "Partners"},
                                 rename={"Contractors": "Partners", "Temps": "Partners"}, default="Staff")
    assert destination.filter_ids() == {pid: pid for pid in ("d-def", "d-staff", "d-part")}  # not linked: ours
    assert destination.filter_ids_back() == {}
    destination.replicates_from(source)
    # Interns: no population of that name here; a user would go to the default one, a filter does not
    assert destination.id_for("Interns") == "d-staff"
    assert destination.filter_ids() == {"s-def": "d-def", "s-staff": "d-staff", "s-con": "d-part", "s-temp": "d-part"}
    # two source populations are one here: a filter read back names the first of them by id
    assert destination.filter_ids_back() == {"d-def": "s-def", "d-staff": "s-staff", "d-part": "s-con"}
    assert destination.names_for_refusal("s-intern") == ("Interns", "Interns")
    assert destination.names_for_refusal("s-temp") == ("Temps", "Partners")
    assert destination.names_for_refusal("nowhere") == (None, None)
