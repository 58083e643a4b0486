"""Prometheus metrics of the HTTP server: requests by route and status, latency, batch sizes.

One ``Metrics`` per app, in its own registry (so several servers in one process, as in the tests,
do not share counts). With ``--workers N`` the workers write to ``PROMETHEUS_MULTIPROC_DIR`` and
GET /metrics sums them (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import os
import time
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
ROUTES = ("/v1/act", "/v1/metadata", "/healthz", "/metrics", "/openapi.json")
# Loopback answers take 0.1-10 ms; the upper buckets catch stalls.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values live in files; the collector reads them at scrape time.
        self.registry = None if self.multiprocess else CollectorRegistry()
        kw: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("serving_requests_total", "HTTP requests answered, by route and status",
                                ("method", "route", "status"), **kw)
        self.latency = Histogram("serving_request_duration_seconds",
                                 "Time from the request's head to the end of its answer", ("route",),
                                 buckets=LATENCY_BUCKETS, **kw)
        self.batch_requests = Histogram("serving_batch_requests", "Requests computed by one policy call "
                                        "(1 without --batch-max)", buckets=BATCH_BUCKETS, **kw)
        self.batch_rows = Histogram("serving_batch_observations", "Observations computed by one policy call",
                                    buckets=BATCH_BUCKETS, **kw)

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def exposition(self) -> tuple[bytes, str]:
        """The text format (version 0.0.4) and its content type."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every HTTP answer (the 401s and 404s too) and timing it."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        route = scope["path"] if scope["path"] in ROUTES else "other"  # bounded label values
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = [500]

        async def send_and_count(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.requests.labels(method, route, str(status[0])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - start)

        await self.app(scope, receive, send_and_count)
