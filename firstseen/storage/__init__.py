"""Storage: the catalog, failure ledger, run log, vectors, index files, on-screen text and kept searches, each behind a narrow interface."""
