"""The error types the core raises, so shells can map them to exit codes and HTTP statuses."""


class FirstSeenError(Exception):
    """Base class: something went wrong that the caller should report, not crash on."""


class BadInputError(FirstSeenError):
    """The caller's input is at fault (exit code 2, HTTP 4xx)."""


class MediaError(BadInputError):
    """A file could not be used as video: empty, not media, audio-only, corrupt or truncated."""


class ManifestError(BadInputError):
    """A manifest line is invalid; carries the line number so the operator can fix it."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class ArchiveMismatchError(FirstSeenError):
    """The archive was built with another descriptor or dimension than the one asked for."""


class ArchiveLockedError(FirstSeenError):
    """Another writer holds the data directory's lock."""


class DescriptorUnavailableError(FirstSeenError):
    """A descriptor plug-in cannot run here (missing package or model file)."""
