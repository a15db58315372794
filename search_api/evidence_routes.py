"""The /v1 endpoints of kept searches: a search's result and evidence pack, from shared storage by any replica."""

from __future__ import annotations

import base64
import io
import logging
import threading
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from PIL import Image

from firstseen.datadir import DataDir
from firstseen.errors import FirstSeenError
from firstseen.search.results import SearchResult
from search_api import schemas
from search_api.auth import Scope, presented_key, require
from search_api.errors import ApiError

router = APIRouter(prefix="/v1")
log = logging.getLogger(__name__)
_pack_builds = threading.Semaphore(1)  # a pack decodes archive frames and renders a PDF: one at a time
_ERRORS = {status: {"model": schemas.Error} for status in (400, 401, 403, 404, 503)}
_KEPT_FRAMES = 48  # query frames kept per stored search, at most (a pack asks for those of 6 matches)


def _search_store(request: Request):
    from firstseen.storage.stored_searches import SearchStore

    settings = request.app.state.settings
    return SearchStore(
        DataDir(settings.data_dir).searches,
        max_age_s=settings.api_search_retention_h * 3600,
        max_count=settings.api_search_max_count,
    )


def keep_search(
    request: Request, path: Path, filename: str, result: SearchResult, frames: dict[float, np.ndarray]
) -> str | None:
    """Keep the search on the archive's shared storage (any replica can then give its pack)."""
    from datetime import UTC, datetime

    from firstseen.evidence.pack import query_facts
    from firstseen.evidence.pack_frames import QueryFile
    from firstseen.storage.stored_searches import owner_of

    if result.query.kind == "image":  # a still: its one frame is the upload's picture
        try:
            frames = {0.0: QueryFile(path)(0.0)}
        except FirstSeenError:
            frames = {}
    body = result.to_dict()
    body["query"]["filename"] = filename
    facts = dict(query_facts(path), filename=filename)
    keys = request.app.state.keys
    owner = owner_of(presented_key(request) if keys.enabled else None)
    try:
        return _search_store(request).save(
            body, facts, frames, owner=owner, searched_at=datetime.now(UTC).isoformat(timespec="seconds")
        )
    except OSError as exc:  # a full or read-only disk: the search stands, its pack is not kept
        log.warning("search not kept: %s", exc)
        return None


def _stored(request: Request, search_id: str):
    from firstseen.storage.stored_searches import SearchNotFoundError, owner_of

    keys = request.app.state.keys
    key = presented_key(request) if keys.enabled else None
    admin = not keys.enabled or keys.scope_of(key or "") is Scope.ADMIN
    try:
        return _search_store(request).get(search_id, owner=owner_of(key), admin=admin)
    except SearchNotFoundError as exc:
        raise ApiError(404, exc.code, str(exc)) from None


@router.get(
    "/searches/{search_id}",
    tags=["search"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.READ))],
    summary="A recent search's result, as it was returned (for the key that made it, or an admin key)",
)
def stored_search(request: Request, search_id: str) -> dict:
    stored = _stored(request, search_id)
    return {**stored.result, "search_id": stored.search_id, "searched_at": stored.searched_at}


@router.get(
    "/searches/{search_id}/text",
    tags=["search"],
    responses=_ERRORS,
    dependencies=[Depends(require(Scope.READ))],
    summary="The text on screen in a kept search's clip, at each segment's middle, quoted as read",
)
def stored_search_text(request: Request, search_id: str) -> dict:
    """Read from the kept frames (the upload is gone), so the page can put the clip's caption
    beside the archive's own chyron."""
    from firstseen.evidence.pack import pack_plan
    from firstseen.search.results import result_from_dict

    stored = _stored(request, search_id)
    service = request.app.state.service
    if service.searcher is None:
        raise ApiError(503, "archive_unavailable", f"no archive yet: {service.unavailable_reason}")
    reader, note = _text_reader(request.app.state.settings)
    if reader is None:
        return {"search_id": search_id, "read": False, "reason": note, "frames": []}
    try:
        result = result_from_dict(stored.result, service.searcher.archive.video)
        middles = sorted({round(key[len(key) // 2], 3) for *_, key, _ in pack_plan(result)})
        with _pack_builds:
            frames = [
                {"t": t, "lines": [line.to_dict() for line in reader.read(stored.query_frame(t))]} for t in middles
            ]
    finally:
        reader.close()
    return {"search_id": search_id, "read": True, "frames": frames}


@router.get(
    "/searches/{search_id}/evidence.zip",
    tags=["search"],
    responses={200: {"content": {"application/zip": {}}}, **_ERRORS},
    dependencies=[Depends(require(Scope.READ))],
    response_class=Response,
    summary="The evidence pack of a recent search: report.html, report.pdf, result.json, frames, strips",
)
def evidence(request: Request, search_id: str) -> Response:
    from firstseen.evidence.pack import pack_of_search, pack_zip
    from firstseen.search.results import result_from_dict

    stored = _stored(request, search_id)
    service = request.app.state.service
    if service.searcher is None:
        raise ApiError(503, "archive_unavailable", f"no archive yet: {service.unavailable_reason}")
    searcher = service.searcher
    reader, note = _text_reader(request.app.state.settings)
    try:
        with _pack_builds:
            result = result_from_dict(stored.result, searcher.archive.video)
            pack = pack_of_search(
                searcher.archive,
                result,
                stored.query_frame,
                query_facts=stored.query_facts,
                descriptor_config=searcher.descriptor.config_id,
                calibration=searcher.calibration,
                searched_at=stored.searched_at,
                text_reader=reader,
                text_note=note,
            )
            body = pack_zip(pack)
    finally:
        if reader is not None:
            reader.close()
    return Response(
        body,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="firstseen-evidence-{search_id}.zip"',
            "Cache-Control": "private, no-store",
        },
    )


def _text_reader(settings):
    """A Tesseract engine for one request (engines are not shared between threads), or why there is none."""
    from firstseen.evidence.onscreen_text import open_reader

    return open_reader(settings.ocr, settings.ocr_languages)


def query_frames(path: Path, result: SearchResult) -> dict[float, np.ndarray]:
    """The query's frames at the upload's own resolution, at every time its evidence shows
    (each segment's start, middle and end, a reversal's strip): decoded once, by seeking, for
    the page's previews (a browser cannot be relied on to decode every codec) and for the
    stored search's pack."""
    from firstseen.evidence.pack import query_times
    from firstseen.evidence.pack_frames import QueryFile

    if result.query.kind != "video":
        return {}
    times = query_times(result)
    if len(times) > _KEPT_FRAMES:
        times = [times[round(i)] for i in np.linspace(0, len(times) - 1, _KEPT_FRAMES)]
    read, frames = QueryFile(path), {}
    for t in times:
        try:
            frames[t] = read(t)
        except FirstSeenError:
            continue  # evidence is a courtesy here; the pack names what it lacks
    return frames


def previews_of(frames: dict[float, np.ndarray]) -> list[dict]:
    out = []
    for t, rgb in sorted(frames.items()):
        small = Image.fromarray(rgb)
        small.thumbnail((480, 480))
        out.append({"t": t, "jpeg": "data:image/jpeg;base64," + base64.b64encode(_jpeg(np.asarray(small))).decode()})
    return out


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
