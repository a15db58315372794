"""Prometheus metrics of one app: requests and latencies by route, search queue, index size."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """A registry per app (not the process-global one), so several apps in one process, as
    in the tests, keep separate counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "firstseen_http_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "firstseen_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.searches = Counter("firstseen_searches", "searches by verdict", ["verdict"], registry=r)
        self.search_seconds = Histogram(
            "firstseen_search_duration_seconds", "decode, describe and match time", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.rejected = Counter("firstseen_searches_rejected", "searches turned away with 429", registry=r)
        self.queue_depth = Gauge("firstseen_search_queue_depth", "searches waiting for a slot", registry=r)
        self.running = Gauge("firstseen_searches_running", "searches running now", registry=r)
        self.index_vectors = Gauge("firstseen_index_vectors", "vectors in the loaded index", registry=r)
        self.index_checkpoint = Gauge("firstseen_index_checkpoint", "checkpoint of the loaded index", registry=r)
        self.index_reloads = Gauge("firstseen_index_loads", "times the index was opened or reloaded", registry=r)
        self.jobs_queued = Gauge("firstseen_ingest_jobs_queued", "ingest jobs waiting to run", registry=r)

    def bind(
        self,
        *,
        queue_depth: Callable[[], float],
        running: Callable[[], float],
        index_vectors: Callable[[], float],
        checkpoint: Callable[[], float],
        reloads: Callable[[], float],
        jobs_queued: Callable[[], float],
    ) -> None:
        """Gauges read the live state when scraped, so they are never stale."""
        self.queue_depth.set_function(queue_depth)
        self.running.set_function(running)
        self.index_vectors.set_function(index_vectors)
        self.index_checkpoint.set_function(checkpoint)
        self.index_reloads.set_function(reloads)
        self.jobs_queued.set_function(jobs_queued)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request by its route template (/v1/videos/{video_id}, not each id), so
    the label set stays small, and logs one structured line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_request: Callable[..., None]):
        self.app, self.metrics, self.log_request = app, metrics, log_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                "/static" if scope["path"].startswith("/static/") else "unmatched"
            )
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(elapsed)
            self.log_request(
                "request",
                method=scope["method"],
                route=template,
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
