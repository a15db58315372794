"""The ingest worker shell: turns manifests and paths into ingest runs over the core archive."""
