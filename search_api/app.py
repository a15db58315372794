"""The FastAPI app factory: wires the core's Searcher, the ingest jobs, auth, metrics and the page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

import firstseen
from search_api.auth import KeyRing
from search_api.errors import install_error_handlers
from search_api.evidence_routes import router as evidence_router
from search_api.jobs import IngestJobs
from search_api.logs import request_logger
from search_api.metrics import Metrics, MetricsMiddleware
from search_api.routes import router
from search_api.service import SearchService
from search_api.settings import ApiSettings, get_api_settings
from search_api.uploads import sweep_stale

log = logging.getLogger("search_api")
STATIC = Path(__file__).parent / "static"


def create_app(settings: ApiSettings | None = None, *, service: SearchService | None = None) -> FastAPI:
    """A ready-to-serve app. Nothing is opened until the app starts (lifespan), so building
    one is cheap and side-effect free."""
    settings = settings or get_api_settings()
    service = service or SearchService(settings)
    jobs = IngestJobs(settings, on_committed=service.refresh)
    metrics = Metrics()
    metrics.bind(
        queue_depth=lambda: service.queued,
        running=lambda: service.running,
        index_vectors=lambda: service.searcher.archive.index_size if service.searcher else 0,
        checkpoint=lambda: service.searcher.archive.checkpoint if service.searcher else 0,
        reloads=lambda: service.reloads,
        jobs_queued=lambda: jobs.depth,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        swept = await asyncio.to_thread(sweep_stale, settings.api_upload_dir)
        if swept:
            log.info("removed %d uploads left behind by an earlier server", swept)
        await asyncio.to_thread(service.refresh)
        if service.searcher is None:
            log.warning("no archive to search yet: %s", service.unavailable_reason)
        await asyncio.to_thread(jobs.start)
        watcher = asyncio.create_task(_watch_checkpoints(service, settings.api_reload_interval_s))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await asyncio.to_thread(jobs.stop)
            await asyncio.to_thread(service.close)

    app = FastAPI(
        title="FirstSeen",
        version=firstseen.__version__,
        lifespan=lifespan,
        description="Reverse video search: find the archive footage a clip or screenshot came "
        "from, its earliest known source, and what was done to it.",
    )
    app.state.settings, app.state.service, app.state.jobs, app.state.metrics = settings, service, jobs, metrics
    app.state.keys = KeyRing.from_settings(settings)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics, log_request=request_logger().info)
    app.include_router(router)
    app.include_router(evidence_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Index loaded and catalog reachable")
    async def readyz() -> JSONResponse:
        index = await asyncio.to_thread(service.index_status)
        catalog: dict = {"reachable": False}
        try:
            await asyncio.wait_for(asyncio.to_thread(service.check_catalog), timeout=5.0)
            catalog["reachable"] = True
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
            catalog["error"] = str(exc) or type(exc).__name__
        ready = bool(index["loaded"] and catalog["reachable"])
        body = {
            "ready": ready,
            "index": index,
            "catalog": catalog,
            "searches": {"running": service.running, "queued": service.queued},
            "ingest_jobs_queued": jobs.depth,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


async def _watch_checkpoints(service: SearchService, interval_s: float) -> None:
    """Look for a newer checkpoint (or a first archive) every interval; the load runs on a
    thread, beside the searches, which keep the index they started with."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(service.refresh)
        except Exception:  # noqa: BLE001 - the watcher must keep watching
            log.exception("checkpoint watcher")
