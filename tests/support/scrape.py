"""Scrape a Prometheus text endpoint and parse it with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, timeout_s: float = 2.0) -> Series:
    """Every sample at `url`, keyed by (sample name, labels)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly these labels, or None when it is absent."""
    return series.get((name, frozenset(labels.items())))
