"""Search: a clip or still described, candidates aligned, verified by geometry, scored, traced to its first source."""
