"""Ingest: inputs read from paths and manifests, triaged, decoded and described, staged and committed, copies linked."""
