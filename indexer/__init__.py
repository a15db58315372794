"""The scheduler shell: the nightly job (ingest, on-screen text, index upkeep) and its health check."""
