"""The garbage collector's tuning (`tune_collector`) and that every command runs under it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from replicator import cli
from replicator.collector import YOUNG_COLLECTION_EVERY, tune_collector


@pytest.fixture
def collector_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tuning_collects_the_young_less_often_and_freezes_what_exists(collector_restored: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_collector()
    assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, 10, 10)
    assert gc.get_freeze_count() > 1000  # the modules loaded so far, at least


def test_a_command_runs_its_event_loop_with_the_collector_tuned(collector_restored: None) -> None:
    gc.set_threshold(700, 10, 10)

    async def young_threshold() -> int:
        return gc.get_threshold()[0]

    assert cli._run_async(young_threshold()) == YOUNG_COLLECTION_EVERY
