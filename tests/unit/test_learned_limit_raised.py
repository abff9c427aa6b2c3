"""A member-count limit a probe raised (`LearnedLimit.raised`) is due at once: the setting is still
untried, so every cycle probes on; one learned from a refusal waits PROBE_AFTER."""

from __future__ import annotations

from replicator.pipeline.member_refusals import PROBE_AFTER, LearnedLimit


def test_a_raised_limit_is_due_from_when_it_was_raised() -> None:
    raised = LearnedLimit(18, 1_000.0, raised=True)
    assert raised.probe_at == 1_000.0 and raised.due(1_000.0)
    assert not LearnedLimit(18, 1_000.0).due(1_000.0 + PROBE_AFTER - 1)


def test_a_raised_limit_is_the_floor_of_a_refused_probe() -> None:
    """A probe's 400 naming fewer than the raised limit falls back to it, unless a request of at most
    that many was refused too (as for a learned limit)."""
    raised = LearnedLimit(18, 1_000.0, raised=True)
    assert raised.chunk_after_refusal(10, 20) == 18
    assert raised.chunk_after_refusal(10, 18) == 10
