"""In-flight counts, moving averages and headroom per deployment (``proxy/optimise/deployment_stats.py``)."""

from __future__ import annotations

import math

import pytest

from proxy.optimise.deployment_stats import EWMA_WEIGHT, MAX_SECONDS, DeploymentStats
from proxy.optimise.headroom import Allowance, Headroom


def test_in_flight_counts_up_and_down_never_below_zero() -> None:
    stats = DeploymentStats()
    stats.started("openai/gpt-4o")
    stats.started("openai/gpt-4o")
    stats.finished("openai/gpt-4o")
    assert stats.state("openai/gpt-4o").in_flight == 1
    stats.finished("openai/gpt-4o")
    stats.finished("openai/gpt-4o")
    assert stats.state("openai/gpt-4o").in_flight == 0
    assert stats.state("anthropic/claude").in_flight == 0


def test_the_first_sample_is_taken_then_averaged() -> None:
    stats = DeploymentStats()
    stats.observe("d", latency=1.0, ttft=0.2)
    assert (stats.state("d").latency, stats.state("d").ttft) == (1.0, 0.2)
    stats.observe("d", latency=2.0)
    assert stats.state("d").latency == pytest.approx(1.0 + EWMA_WEIGHT * 1.0)
    assert stats.state("d").ttft == 0.2  # a plain answer has no time to first token


def test_the_average_follows_a_lasting_change() -> None:
    stats = DeploymentStats()
    stats.observe("d", latency=5.0)
    for _ in range(30):
        stats.observe("d", latency=1.0)
    assert stats.state("d").latency == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("sample", [-0.1, math.nan, math.inf, MAX_SECONDS + 1, True, "1.0"])
def test_insane_samples_are_ignored(sample: object) -> None:
    stats = DeploymentStats()
    stats.observe("d", latency=0.5)
    stats.observe("d", latency=sample, ttft=sample)  # type: ignore[arg-type]
    assert (stats.state("d").latency, stats.state("d").ttft) == (0.5, None)


def test_deployments_are_kept_apart() -> None:
    stats = DeploymentStats()
    stats.observe("a", latency=1.0)
    stats.started("b")
    assert stats.state("b").latency is None and stats.state("a").in_flight == 0


def test_headers_keep_the_latest_headroom_and_silence_keeps_it() -> None:
    stats = DeploymentStats()
    stats.observe_headers("d", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
                          now=10.0, wall_now=0.0)
    assert stats.state("d").headroom == Headroom(requests=Allowance(0, 12.0))
    stats.observe_headers("d", {"content-type": "application/json"}, now=11.0, wall_now=0.0)
    assert stats.state("d").headroom == Headroom(requests=Allowance(0, 12.0))
    stats.observe_headers("d", {"x-ratelimit-remaining-requests": "99", "x-ratelimit-reset-requests": "1s"},
                          now=11.5, wall_now=0.0)
    assert stats.state("d").headroom == Headroom(requests=Allowance(99, 12.5))


def test_a_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        DeploymentStats(weight=0)
