"""The text a scrape gets: Prometheus or OpenMetrics format, as the scraper asks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder


def render(registry: CollectorRegistry, accept_header: str | None) -> tuple[bytes, str]:
    """(body, content type) for one scrape of ``registry``."""
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(registry), content_type
