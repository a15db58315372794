"""The HTTP shell around the firstseen core: FastAPI app, auth, uploads, ingest jobs, the web page."""
