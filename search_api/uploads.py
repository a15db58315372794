"""Receiving an upload: multipart parsed as it streams in, written to a temporary file, cut off at the size limit."""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from firstseen.media.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from search_api.errors import ApiError

FIELD = "file"
_PREFIX = "firstseen-upload-"
_ENVELOPE_SLACK = 64 * 1024  # multipart boundaries and part headers around the file's bytes


@dataclass(frozen=True)
class ReceivedUpload:
    path: Path  # the caller deletes it (remove_quietly) when done
    filename: str
    size: int


def safe_filename(raw: str | None) -> str:
    """The client's name for the file, fit to show back: no folders, no control characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", (raw or "").replace("\\", "/")).rsplit("/", 1)[-1].strip()
    return name[:200] or "upload"


def remove_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def sweep_stale(dest_dir: Path | None, *, older_than_s: float = 3600.0) -> int:
    """Remove uploads a killed server left behind (a finally block does not run on SIGKILL).
    Only files older than any upload could be in flight, since servers may share the folder."""
    folder = Path(dest_dir or tempfile.gettempdir())
    removed = 0
    for path in folder.glob(f"{_PREFIX}*"):
        try:
            if time.time() - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed


class _FilePart:
    """Collects the multipart callbacks for one request; only the `file` field is kept."""

    def __init__(self, dest_dir: Path | None, max_bytes: int):
        self.dest_dir, self.max_bytes = dest_dir, max_bytes
        self.path: Path | None = None
        self.filename: str | None = None
        self.size = 0
        self._received = 0
        self._fh = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition: bytes = b""
        self._in_file = False
        self._done = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._disposition = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._disposition)
        self._in_file = params.get(b"name") == FIELD.encode() and not self._done
        if not self._in_file:
            return
        self.filename = safe_filename(params.get(b"filename", b"").decode("utf-8", "replace"))
        suffix = Path(self.filename).suffix.lower()
        # The suffix is kept when it is a known media type: it tells a still from a clip.
        keep = suffix if suffix in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS else ""
        fd, name = tempfile.mkstemp(prefix=_PREFIX, suffix=keep, dir=self.dest_dir)
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        # Every part counts toward the limit: bytes in other fields are read, though not kept.
        self._received += end - start
        if self._received > self.max_bytes:
            raise _TooLarge
        if self._in_file:
            self.size += end - start
            self._fh.write(data[start:end])

    def _end(self) -> None:
        if self._in_file:
            self._fh.close()
            self._fh = None
            self._in_file = False
            self._done = True

    @property
    def complete(self) -> bool:
        return self._done

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        remove_quietly(self.path)


class _TooLarge(Exception):
    pass


async def receive_upload(request: Request, *, dest_dir: Path | None, max_bytes: int) -> ReceivedUpload:
    """Stream the request's multipart `file` field to a temporary file. Raises ApiError
    (413 past max_bytes, 400 for a malformed or missing part) and leaves no file behind."""
    too_large = ApiError(413, "payload_too_large", f"upload is larger than the limit of {max_bytes / 1e6:.0f} MB")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(415, "expected_multipart", "send the clip as multipart/form-data in a field named 'file'")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + _ENVELOPE_SLACK:
        raise too_large  # refused before a byte of it is read
    part = _FilePart(dest_dir, max_bytes)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except _TooLarge:
        part.discard()
        raise too_large from None
    except MultipartParseError as exc:
        part.discard()
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc}") from None
    except BaseException:  # the client went away, or the server is stopping
        part.discard()
        raise
    if part.path is None or not part.complete:
        part.discard()
        raise ApiError(400, "missing_file", "no complete field named 'file' in the upload")
    return ReceivedUpload(part.path, part.filename or "upload", part.size)
