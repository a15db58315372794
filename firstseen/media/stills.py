"""Loading a still (a screenshot, a photo) as one upright frame, with decompression bombs refused before decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from firstseen.errors import MediaError
from firstseen.records import SampledFrame


def load_image(path: str | Path, *, max_side: int, max_pixels: int = 50_000_000) -> SampledFrame:
    """A still (screenshot, photo) as one upright RGB frame at pts_s=0.0, longer side <= max_side.

    The pixel count is checked from the header before any decoding, so a decompression bomb
    costs nothing; larger images raise MediaError.
    """
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise MediaError("empty file (0 bytes)", code="empty_file")
        with Image.open(p) as img:  # lazy: only the header has been read here
            width, height = img.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image too large: {width}x{height} exceeds {max_pixels} pixels", code="image_too_large"
                )
            # JPEG can decode at 1/2..1/8 scale directly; draft keeps it >= the size we need
            img.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(img).convert("RGB")
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(f"image too large: {exc}", code="image_too_large") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"not an image file: {p.name!r} is in no format Pillow reads", code="not_media") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"corrupt or unreadable image: {exc}") from exc
    upright.thumbnail((max_side, max_side), Image.Resampling.BOX)
    return SampledFrame(pts_s=0.0, rgb=np.asarray(upright, dtype=np.uint8).copy())
