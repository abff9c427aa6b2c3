"""The daemon's metrics: every declared metric has samples, and the series the alerts watch exist from the start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replicator.config import Config, SideConfig
from replicator.daemon import Daemon, Metrics
from replicator.testing import MemoryScimServer

TOKEN = "metrics-token"
USER_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:User"]
GROUP_SCHEMA = ["urn:ietf:params:scim:schemas:core:2.0:Group"]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MemoryScimServer, MemoryScimServer]]:
    source, destination = MemoryScimServer(bearer_token=TOKEN), MemoryScimServer(bearer_token=TOKEN)
    await source.start()
    await destination.start()
    users = [source.add_user({"schemas": USER_SCHEMA, "userName": f"user{i}@example.com"}) for i in range(5)]
    for name in ("staff", "admins"):
        source.add_group({"schemas": GROUP_SCHEMA, "displayName": name, "members": [{"value": users[0]["id"]}]})
    yield source, destination
    await source.stop()
    await destination.stop()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric family name -> its samples (labels, value), parsed from a Prometheus exposition; a
    counter's `_created` timestamps left out."""
    return {family.name: [(s.labels, s.value) for s in family.samples if not s.name.endswith("_created")]
            for family in text_string_to_metric_families(text)}


def declared_families(metrics: Metrics) -> set[str]:
    """Names of the families the daemon's registry declares (a counter without its `_total`, as the parser names it)."""
    return {family.name for family in metrics.registry.collect()}


async def test_every_declared_metric_has_samples_after_a_cycle(pair, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """After a daemon's first cycle every declared family has a sample; resources_tracked counts the state by
    kind; the cycle's INFO line says what happened in the same plain words as a one-shot run's."""
    source, destination = pair
    caplog.set_level(logging.INFO, logger="replicator.daemon")
    config = Config(source=SideConfig(url=source.base_url or "", token=TOKEN),
                    destination=SideConfig(url=destination.base_url or "", token=TOKEN),
                    state=str(tmp_path / "state.db"), interval=3600, interval_jitter=0.0, listen="127.0.0.1:0")
    metrics = Metrics()
    daemon = Daemon(config, metrics=metrics)
    sleeping = asyncio.Event()
    real_sleep = daemon._sleep

    async def sleep_after_first_cycle(seconds: float) -> None:  # the loop waits for the next cycle: stop here
        sleeping.set()
        await real_sleep(seconds)

    daemon._sleep = sleep_after_first_cycle  # type: ignore[method-assign]
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(sleeping.wait(), 15)
    assert daemon.cycles_done == 1 and len(destination.users) == 5 and len(destination.groups) == 2
    scraped = samples(metrics.render().decode())
    empty = sorted(name for name in declared_families(Metrics()) if not scraped.get(name))
    assert empty == [], f"declared metrics without samples: {empty}"
    tracked = {labels["kind"]: value for labels, value in scraped["scimrep_resources_tracked"]}
    assert tracked == {"User": 5.0, "Group": 2.0}
    lines = [r.getMessage() for r in caplog.records if r.name == "replicator.daemon" and r.levelname == "INFO"]
    assert any(line.startswith("cycle finished: full ok in ") and ": created 7, updated 0, deleted 0, failed 0" in line
               for line in lines), lines
    daemon.request_stop()
    assert await asyncio.wait_for(task, 10) == 0


def test_alerted_series_exist_at_zero_before_any_cycle() -> None:
    """Held removals, failures, retries, 429s, tracked objects and cycles of every mode and outcome are
    exported at 0 before the first cycle (so that the first failed cycle is an increase an alert sees)."""
    scraped = samples(Metrics().render().decode())
    cycles = {(labels["mode"], labels["outcome"]): value for labels, value in scraped["scimrep_cycles"]}
    assert cycles[("incremental", "failed")] == 0.0 and cycles[("full", "ok")] == 0.0 and len(cycles) == 10
    operations = {labels["operation"]: value for labels, value in scraped["scimrep_operations"]}
    assert {"removals_held": 0.0, "member_removals_held": 0.0, "failed": 0.0}.items() <= operations.items()
    for family in ("scimrep_retries", "scimrep_rate_limited"):
        sides = {labels["side"] for labels, _ in scraped[family]}
        assert sides == {"source", "destination"}, family
    assert {labels["kind"] for labels, _ in scraped["scimrep_resources_tracked"]} == {"User", "Group"}
