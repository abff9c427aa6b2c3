"""The `pair` label every metric of a daemon carries, so that dashboards and alerts tell pairs apart
however they are scraped (two pairs on one host or pod template, a pod's address changing on restart).

`pair_label` is the name (the `pair` setting, else both URLs' host and path); `PairLabelled` puts it on
every sample of a registry (prometheus_client has no constant labels). Pure.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from replicator.config import Config
from replicator.pipeline.urls import destination_key


def pair_label(config: Config) -> str:
    """The `pair` label of every metric: the `pair` setting, else the host and path of both URLs
    (`idp.example.com/scim/v2 -> apps.example.net/scim/v2`): one per pair, the same after a restart."""
    if config.pair:
        return config.pair
    urls = (side.url for side in (config.source, config.destination))
    return " -> ".join(destination_key(url).partition("://")[2] if url else "none" for url in urls)


class PairLabelled:
    """A registry's metrics with a constant `pair` label on every sample, as `generate_latest` reads them."""

    def __init__(self, registry: CollectorRegistry, pair: str) -> None:
        self.registry, self.pair = registry, pair

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [sample._replace(labels={"pair": self.pair, **sample.labels}) for sample in family.samples]
            yield family
