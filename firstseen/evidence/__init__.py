"""Evidence a fact-check publishes beyond the match: evidence packs, their report, and on-screen text."""
