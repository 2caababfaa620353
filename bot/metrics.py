"""The bot's Prometheus metrics, on a registry of their own (one per app, so two apps in one process,
as in the tests, never share counts).

Label values are bounded: event types are counted only after a request has passed authentication,
rejection reasons come from ``webhook.Rejection``, and job statuses from the job store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

JobCounts = Callable[[], Mapping[Any, int]]


class _JobsByStatus(Collector):
    """Reads the job store at scrape time, so the gauge is never stale and costs nothing between scrapes."""

    def __init__(self, counts: JobCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("video_insight_jobs", "Jobs in the job store, by status.", labels=["status"])
        try:
            counts = self._counts()
        except Exception as exc:  # a scrape must not fail because the store is busy
            log.warning("could not count jobs for /metrics: %s", exc)
            return []
        for status, count in sorted(counts.items(), key=lambda item: str(item[0])):
            gauge.add_metric([str(getattr(status, "value", status))], float(count))
        return [gauge]


class BotMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_received = Counter(
            "video_insight_webhook_events",
            "Authenticated webhook deliveries, by event type.",
            ["event_type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "video_insight_webhook_rejected",
            "Webhook requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.ignored = Counter(
            "video_insight_webhook_ignored",
            "Authenticated deliveries answered 200 without action (bot senders, unknown event types).",
            ["reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "video_insight_webhook_duplicates",
            "Redelivered events dropped, by the id that matched (event_id or message_id).",
            ["key"],
            registry=self.registry,
        )
        self.commands = Counter(
            "video_insight_commands",
            "What accepted messages asked for (job, help, nothing, bad_options).",
            ["command"],
            registry=self.registry,
        )
        self.outbox_failures = Counter(
            "video_insight_outbox_failures",
            "Sends to Feishu that failed after the webhook was acknowledged, by task.",
            ["task"],
            registry=self.registry,
        )
        self._jobs_watched = False

    def watch_jobs(self, counts: JobCounts) -> None:
        """Export ``video_insight_jobs{status}`` read from ``counts()`` at every scrape (once per registry)."""
        if self._jobs_watched:
            return
        self.registry.register(_JobsByStatus(counts))
        self._jobs_watched = True

    def outbox_failed(self, task: str, _error: BaseException) -> None:
        # Task names look like "reply:queued"; only the kind before the colon is a label (bounded).
        self.outbox_failures.labels(task=task.split(":", 1)[0]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
