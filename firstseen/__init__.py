"""FirstSeen core: find the archive footage a suspect clip came from (no HTTP, no job control)."""

__version__ = "0.1.0"
