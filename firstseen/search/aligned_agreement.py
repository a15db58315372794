"""Whether a verified frame pair agrees as pictures: the parts the geometry says overlap, described again.

Sparse keypoints can agree on shared graphics alone (a program's overview inset and compass, a
channel's bug, a studio set) however different the pictures around them: two screenshots of
one map application showing different regions verify with 84 inliers. The descriptor, on the
other hand, scores a tight crop or a 9:16 re-framing low because it compares a part of the
source with the whole of it. Cut each frame down to the part the verified transform says it
shares with the other, and the descriptor compares like with like: a real crop becomes the
same picture twice, two look-alikes that share only their chrome stay two different pictures.
The similarity is normalised against the background as every other similarity is, so the
calibrated score reads it. Pure: frames and evidence in, a similarity out."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from firstseen.search.background import Background
from firstseen.search.geometry import PairEvidence

Describe = Callable[[list[np.ndarray]], np.ndarray]

MIN_PART_PX = 24  # an overlap thinner than this is no picture to describe


def _rgb(image: np.ndarray) -> np.ndarray:
    """Grey, as three channels: archive thumbnails are grey, so both sides are compared in grey."""
    gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def overlapping_parts(
    query_image: np.ndarray, source_image: np.ndarray, pair: PairEvidence
) -> tuple[np.ndarray, np.ndarray] | None:
    """The query frame's part that shows the source, and the source frame's part that the
    query shows, in the same orientation (the query's part is flipped back where the flipped
    view verified); None where the pair did not verify or an overlap is too thin."""
    if pair.query_in_source is None or pair.source_in_query is None:
        return None
    query_part = pair.source_in_query.crop(_rgb(query_image))
    source_part = pair.query_in_source.crop(_rgb(source_image))
    if min(*query_part.shape[:2], *source_part.shape[:2]) < MIN_PART_PX:
        return None
    if pair.flipped:
        query_part = np.ascontiguousarray(query_part[:, ::-1])
    return query_part, source_part


class AgreementCheck:
    """Scores verified pairs by how alike their overlapping parts are to the descriptor,
    less the query part's similarity to its k-th background neighbour (as alignment does)."""

    def __init__(self, describe: Describe, background: Background | None, background_k: int):
        self._describe, self._background, self._k = describe, background, background_k

    def __call__(self, query_image: np.ndarray, source_image: np.ndarray, pair: PairEvidence) -> float | None:
        parts = overlapping_parts(query_image, source_image, pair)
        if parts is None:
            return None
        vectors = np.asarray(self._describe(list(parts)), np.float32)
        similarity = float(vectors[0] @ vectors[1])
        if self._background is not None:
            similarity -= float(self._background.kth_similarity(vectors[:1], self._k)[0])
        return similarity
