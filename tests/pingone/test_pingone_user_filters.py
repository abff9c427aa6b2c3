"""PingOne -> PingOne: the population ids a dynamic group's userFilter names are the destination's once
written (populations travel by name), so PingOne computes the same members there; a filter naming a
population the destination lacks fails that group, by name, and the rest of the cycle goes on."""

from __future__ import annotations

from pathlib import Path

from replicator.app import replicate
from replicator.config import Config, SyncConfig
from replicator.cycle import FULL, INCREMENTAL
from replicator.testing.pingone import serve_pingone
from tests.pingone.test_pingone_replication import side, writes


async def test_a_dynamic_groups_population_ids_are_the_destinations(tmp_path: Path) -> None:
    async with serve_pingone() as emulator:
        source, destination = emulator.add_environment("src"), emulator.add_environment("dst")
        for env in (source, destination):
            env.add_population("Staff")
        source.add_population("Contractors")
        destination.add_population("Partners")  # the destination's name for the source's Contractors
        source.add_population("Interns")  # which the destination lacks
        for env in (source, destination):
            for i in range(6):
                population = ("Staff", "Contractors" if env is source else "Partners", None)[i % 3]
                env.add_user(f"u{i}", population=population, title="Lead" if i < 3 else "Member")
        staff, contractors = source.population_id("Staff"), source.population_id("Contractors")
        assert staff != destination.population_id("Staff")
        text = f'(population.id eq "{staff}" or population.id eq "{contractors}") and title eq "Lead"'
        source.add_group("Lead staff", user_filter=text)
        source.add_group("Interns", user_filter=f'population.id eq "{source.population_id("Interns")}"')
        source.add_group("Everyone")
        config = Config(source=side(emulator, source),
                        destination=side(emulator, destination, populations={"Contractors": "Partners"}),
                        state=str(tmp_path / "s.db"), sync=SyncConfig(max_delete_percent=100.0))

        first = await replicate(config, mode=INCREMENTAL, dry_run=False)

        by_name = {g["name"]: g for g in destination.directory.groups.values()}
        copied = by_name["Lead staff"]
        assert copied["userFilter"] == (f'(population.id eq "{destination.population_id("Staff")}" or population.id '
                                        f'eq "{destination.population_id("Partners")}") and title eq "Lead"')
        users = destination.directory.users
        assert {users[u]["username"] for u in destination.member_ids(copied["id"], indirect=True)} == {"u0", "u1"}
        # the group whose population the destination lacks is not created, and says why; the rest is written
        assert "Interns" not in by_name and "Everyone" in by_name
        assert [(label, why) for _, label, why in first.failures] == [(
            "Interns", f'its userFilter names population id "{source.population_id("Interns")}" ("Interns" on the '
            'source), and destination has no population named "Interns", so the group is not written (a filter '
            "naming another environment's id matches nobody)")]

        # the filter read back from the destination is the source's: a cycle without change writes nothing,
        # a full one (which compares every object with the destination's) neither (the failed group waits
        # for its retry, as every failure does)
        before = writes(destination)
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == first.outcome == "partial"
        assert (await replicate(config, mode=FULL, dry_run=False)).outcome == "partial"
        assert writes(destination) == before
        assert "Interns" not in {g["name"] for g in destination.directory.groups.values()}


async def test_two_source_populations_one_destination_population_write_once(tmp_path: Path) -> None:
    """Contractors and Temps are both Partners on the destination: each group's filter names Partners,
    and though a filter read back names one of the two source populations, a full cycle writes nothing."""
    async with serve_pingone() as emulator:
        source, destination = emulator.add_environment("src"), emulator.add_environment("dst")
        destination.add_population("Partners")
        for name in ("Contractors", "Temps"):
            source.add_population(name)
            source.add_group(name, user_filter=f'population.id eq "{source.population_id(name)}"')
        config = Config(source=side(emulator, source),
                        destination=side(emulator, destination, populations={"Contractors": "Partners",
                                                                             "Temps": "Partners"}),
                        state=str(tmp_path / "s.db"))
        assert (await replicate(config, mode=INCREMENTAL, dry_run=False)).outcome == "ok"
        partners = f'population.id eq "{destination.population_id("Partners")}"'
        assert [g["userFilter"] for g in destination.directory.groups.values()] == [partners, partners]
        before = writes(destination)
        assert (await replicate(config, mode=FULL, dry_run=False)).outcome == "ok"
        assert writes(destination) == before


async def test_the_groups_a_userfilter_names_are_the_destinations(tmp_path: Path) -> None:
    """memberOfGroups[id eq "<group>"] names the destination's copy of the group (the state's map), also
    when the dynamic group is read before the group it names; one naming a group that is not replicated
    (an external one) fails, by id."""
    async with serve_pingone() as emulator:
        source, destination = emulator.add_environment("src"), emulator.add_environment("dst")
        users = {f"u{i}": source.add_user(f"u{i}", title="Lead" if i % 2 else "Member")["id"] for i in range(6)}
        for name in users:
            destination.add_user(name, title="Lead" if int(name[1:]) % 2 else "Member")
        engineering = source.add_group("Engineering")
        for name in ("u0", "u1", "u2", "u3"):
            source.add_member(engineering["id"], users[name])
        external = source.add_group("AD admins", source_type="IDP", source_id="idp-1")
        source.add_group("Eng leads", user_filter=f'memberOfGroups[id eq "{engineering["id"]}"] and title eq "Lead"')
        source.add_group("Ext leads", user_filter=f'memberOfGroups[id eq "{external["id"]}"]')
        groups = source.directory.groups
        groups[engineering["id"]] = groups.pop(engineering["id"])  # listed last: after the group naming it
        config = Config(source=side(emulator, source), destination=side(emulator, destination),
                        state=str(tmp_path / "s.db"), sync=SyncConfig(max_delete_percent=100.0))

        first = await replicate(config, mode=INCREMENTAL, dry_run=False)

        by_name = {g["name"]: g for g in destination.directory.groups.values()}
        leads, copied_engineering = by_name["Eng leads"], by_name["Engineering"]
        assert leads["userFilter"] == f'memberOfGroups[id eq "{copied_engineering["id"]}"] and title eq "Lead"'
        names = destination.directory.users
        assert {names[u]["username"] for u in destination.member_ids(leads["id"], indirect=True)} == {"u1", "u3"}
        assert "Ext leads" not in by_name
        assert [(label, why) for _, label, why in first.failures] == [(
            "Ext leads", f'its userFilter names group id "{external["id"]}" (memberOfGroups), and destination has '
            "no such group (that group is not replicated there), so the group is not written (a filter naming "
            "another environment's id matches nobody)")]
        before = writes(destination)
        await replicate(config, mode=INCREMENTAL, dry_run=False)
        await replicate(config, mode=FULL, dry_run=False)
        assert writes(destination) == before
