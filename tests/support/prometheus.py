"""Reading a /metrics answer the way Prometheus does: with prometheus_client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [sample for family in self.families.values() for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The one sample called ``name`` whose labels include ``labels``."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) == 1, f"{len(found)} samples {name}{labels} in the scrape"
        return found[0]

    def labels_of(self, name: str) -> list[dict]:
        return [s.labels for s in self.samples if s.name == name]
