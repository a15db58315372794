"""Search: a clip or still described, candidates aligned, verified by geometry, scored and traced to its earliest source."""
