"""The /v1 endpoints: search, videos and their frames, takedown, ingest jobs. Each one is a
thin call into the core; what can block runs on a thread, never on the event loop."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from PIL import Image

from firstseen.errors import FirstSeenError
from firstseen.media.frames import frame_at
from firstseen.ops.takedown import take_down
from firstseen.records import VideoRecord
from firstseen.search.results import reference_dict
from search_api import schemas
from search_api.auth import Scope, require
from search_api.errors import ApiError
from search_api.evidence_routes import keep_search, previews_of, query_frames
from search_api.service import BusyError, SearchService
from search_api.uploads import receive_upload, remove_quietly

router = APIRouter(prefix="/v1")
log = logging.getLogger(__name__)
_frame_decodes = threading.Semaphore(2)  # evidence frames are decoded on request; keep it bounded
_MAX_INGEST_BODY = 5_000_000
_ERRORS = {status: {"model": schemas.Error} for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)}

_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "video clip or still image"}
                    },
                }
            }
        },
    }
}
_MANIFEST = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.IngestLines.model_json_schema()},
            "application/x-ndjson": {"schema": {"type": "string", "description": "JSONL manifest, one object a line"}},
        },
    }
}


def _service(request: Request) -> SearchService:
    return request.app.state.service


@router.get("/info", tags=["search"], summary="What the page needs to know before an upload")
def info(request: Request) -> dict:
    settings, service = request.app.state.settings, _service(request)
    status = service.index_status()
    return {
        "auth_required": request.app.state.keys.enabled,
        "max_upload_bytes": int(settings.api_max_upload_mb * 1e6),
        "max_clip_s": settings.query_max_duration_s,
        "archive": {
            "ready": status["loaded"],
            "videos": status.get("videos", 0),
            "checkpoint": status.get("checkpoint", 0),
        },
    }


@router.post(
    "/search",
    tags=["search"],
    response_model=schemas.SearchResult,
    responses=_ERRORS,
    response_model_exclude_unset=True,
    dependencies=[Depends(require(Scope.READ))],
    openapi_extra=_MULTIPART,
    summary="Find the archive footage a clip or screenshot came from",
)
async def search(
    request: Request,
    top_k: int = Query(10, ge=1, le=100),
    previews: bool = Query(
        False, description="also return the query's frames at each segment's middle (query_frames), as JPEG data URLs"
    ),
) -> dict:
    service, settings, metrics = _service(request), request.app.state.settings, request.app.state.metrics
    if service.searcher is None:
        raise ApiError(503, "archive_unavailable", f"no archive to search yet: {service.unavailable_reason}")
    try:
        service.admit()
    except BusyError as busy:
        metrics.rejected.inc()
        raise ApiError(429, "busy", str(busy), {"Retry-After": str(busy.retry_after_s)}) from None
    try:
        upload = await receive_upload(
            request, dest_dir=settings.api_upload_dir, max_bytes=int(settings.api_max_upload_mb * 1e6)
        )
        try:
            result = await service.search(upload.path, top_k=top_k)
            shown = await asyncio.to_thread(query_frames, upload.path, result)
            frames = previews_of(shown) if previews else None
            search_id = await asyncio.to_thread(keep_search, request, upload.path, upload.filename, result, shown)
        finally:
            remove_quietly(upload.path)
    finally:
        service.release()
    metrics.searches.labels(result.verdict).inc()
    metrics.search_seconds.observe(result.timings_s.get("total_s", 0.0))
    body = result.to_dict()
    body["query"]["filename"] = upload.filename  # not the temporary file's name
    if frames is not None:
        body["query_frames"] = frames
    if search_id is not None:
        body["search_id"] = search_id
    return body


def _jpeg(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _record(request: Request, video_id: str) -> VideoRecord:
    service = _service(request)
    if service.searcher is None:
        raise ApiError(503, "archive_unavailable", f"no archive yet: {service.unavailable_reason}")
    record = service.searcher.archive.video(video_id)
    if record is None or record.status != "committed":
        raise ApiError(404, "not_found", f"no video {video_id!r} in the archive")
    return record


@router.get(
    "/videos/{video_id}",
    tags=["videos"],
    response_model=schemas.Video,
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.READ))],
    summary="A video's catalog record and its known copies",
)
def video(request: Request, video_id: str) -> dict:
    record = _record(request, video_id)
    archive = _service(request).searcher.archive
    copies = []
    for link in archive.copy_links(record.video_id):
        other = archive.video(link.other_video_id)
        if other is not None and other.status == "committed":
            copies.append({**reference_dict(other), "score": link.score, "segments": link.segments})
    copies.sort(key=lambda c: (c["published_at"] is None, c["published_at"] or ""))
    return {
        **reference_dict(record),
        "duration_s": record.duration_s,
        "width": record.width,
        "height": record.height,
        "codec": record.codec,
        "sha256": record.sha256,
        "frames": record.frame_count,
        "ingested_at": record.ingested_at.isoformat(),
        "copies": copies,
    }


@router.get(
    "/videos/{video_id}/frame",
    tags=["videos"],
    responses={200: {"content": {"image/jpeg": {}}}, **_ERRORS},
    dependencies=[Depends(require(Scope.READ))],
    response_class=Response,
    summary="The archived frame on screen at t seconds, as JPEG evidence",
)
def frame(
    request: Request,
    video_id: str,
    t: float = Query(..., ge=0, description="seconds from the start"),
    max_side: int = Query(640, ge=32, le=1920),
) -> Response:
    record = _record(request, video_id)
    if t > record.duration_s + 1.0:
        raise ApiError(422, "bad_time", f"t={t} is past the end of the video ({record.duration_s:.1f} s)")
    with _frame_decodes:
        try:
            shown = frame_at(record.path, t, max_side=max_side)
        except FileNotFoundError:
            raise ApiError(410, "source_file_missing", "the archived file is no longer on disk") from None
    return Response(
        _jpeg(shown.rgb),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=3600", "X-Frame-Time": f"{shown.pts_s:.3f}"},
    )


@router.get(
    "/videos/{video_id}/text",
    tags=["videos"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.READ))],
    summary="The on-screen text read in a stretch of an archived video (its chyrons, captions, dates)",
)
def video_text(request: Request, video_id: str, t0: float = Query(0.0, ge=0), t1: float = Query(1e9, ge=0)) -> dict:
    record = _record(request, video_id)
    spans = _service(request).searcher.archive.onscreen_text.text_between(record.video_id, t0, max(t0, t1))
    return {"video_id": record.video_id, "spans": [s.to_dict() for s in spans]}


@router.get(
    "/text",
    tags=["videos"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.READ))],
    summary="Archived footage whose on-screen text holds every word of q, with the times it is shown",
)
def text_search(
    request: Request, q: str = Query(..., min_length=1, max_length=200), limit: int = Query(20, ge=1, le=200)
) -> dict:
    service = _service(request)
    if service.searcher is None:
        raise ApiError(503, "archive_unavailable", f"no archive yet: {service.unavailable_reason}")
    archive = service.searcher.archive
    try:
        spans = archive.onscreen_text.search(q, limit=limit)
    except FirstSeenError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    hits = []
    for span in spans:
        record = archive.video(span.video_id)
        if record is not None and record.status == "committed":
            hits.append({**span.to_dict(), "video": reference_dict(record)})
    return {"query": q, "hits": hits}


@router.delete(
    "/videos/{video_id}",
    tags=["admin"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.ADMIN))],
    summary="Take a video out of the index and the catalog (takedown)",
)
def remove(request: Request, video_id: str) -> dict:
    settings = request.app.state.settings
    # a sync handler runs on a worker thread, so waiting for an ingest's lock blocks no other request
    record = take_down(
        settings.data_dir,
        settings.resolved_catalog_url(),
        video_id,
        lock_wait_s=settings.lock_wait_s,
        index_url=settings.index_url,
    )
    _service(request).refresh()
    return {"removed": record.video_id, "external_id": record.external_id, "frames": record.frame_count}


@router.post(
    "/ingest",
    tags=["admin"],
    status_code=202,
    responses=_ERRORS,
    openapi_extra=_MANIFEST,
    dependencies=[Depends(require(Scope.ADMIN))],
    summary="Queue manifest lines for ingest; returns a job",
)
async def ingest(request: Request) -> dict:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_INGEST_BODY:
            raise ApiError(413, "payload_too_large", f"an ingest request is limited to {_MAX_INGEST_BODY} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_manifest", "the manifest is not UTF-8 text") from None
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        text = _jsonl_from_json(text)
    return request.app.state.jobs.submit(text)


def _jsonl_from_json(text: str) -> str:
    try:
        lines = schemas.IngestLines.model_validate_json(text).lines
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f'expected {{"lines": [{{"path": ...}}, ...]}}: {exc}') from None
    return "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)


@router.get(
    "/jobs/{job_id}",
    tags=["admin"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.ADMIN))],
    summary="An ingest job's state, progress and per-video errors",
)
def job(request: Request, job_id: str) -> dict:
    found = request.app.state.jobs.get(job_id)
    if found is None:
        raise ApiError(404, "not_found", f"no ingest job {job_id!r}")
    return found
