"""Webhook delivery metrics, on the worker's registry (see activities/metrics.py):

imgproc_webhook_deliveries_total{outcome}   attempts by outcome: delivered, retry, or
                                            the final failure's code (gone, expired...)
imgproc_webhook_attempt_duration_seconds    time of attempts that got an HTTP answer
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class DeliveryMetrics:
    """On `registry`; None gives a private one (tests, activities built without metrics)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "imgproc_webhook_deliveries",
            "Webhook delivery attempts by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "imgproc_webhook_attempt_duration_seconds",
            "Time of webhook attempts that got an HTTP answer.",
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )

    def count(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()
