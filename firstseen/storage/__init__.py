"""Storage: catalog, failure ledger, run log, vectors, index files, on-screen text, kept searches, behind Protocols."""
