"""The error types the core raises, so shells can map them to exit codes and HTTP statuses."""


class FirstSeenError(Exception):
    """Base class: something went wrong that the caller should report, not crash on.

    code is a stable machine-readable name for the kind of failure (the HTTP API returns it);
    a raise site may give a more precise one than its class's default."""

    code = "internal_error"

    def __init__(self, message: str = "", *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class BadInputError(FirstSeenError):
    """The caller's input is at fault (exit code 2, HTTP 4xx)."""

    code = "bad_input"


class MediaError(BadInputError):
    """A file could not be used as video: empty, not media, audio-only, corrupt or truncated."""

    code = "unreadable_media"


class ManifestError(BadInputError):
    """A manifest line is invalid; carries the line number so the operator can fix it."""

    code = "bad_manifest"

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class ArchiveMismatchError(FirstSeenError):
    """The archive was built with another descriptor or dimension than the one asked for."""

    code = "archive_mismatch"


class ArchiveLockedError(FirstSeenError):
    """Another writer holds the data directory's lock."""

    code = "archive_busy"


class DescriptorUnavailableError(FirstSeenError):
    """A descriptor plug-in cannot run here (missing package or model file)."""

    code = "descriptor_unavailable"


class DuplicateVideoError(FirstSeenError):
    """A video with this sha256, external_id or video_id is already in the catalog."""

    def __init__(self, field: str, value: str, existing_video_id: str):
        self.field = field
        self.value = value
        self.existing_video_id = existing_video_id
        super().__init__(f"{field} {value!r} is already in the catalog (video {existing_video_id})")


class VideoNotFoundError(BadInputError):
    """No video has this id (or external id)."""
