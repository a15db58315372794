"""On-screen text (captions, chyrons, burned-in dates and places): where a frame holds text and what it says.

A fact-check quotes the source footage's own chyron beside the clip's caption ("the clip says
Moscow, 30 September 2022; the footage's chyron says Vladivostok, 25 April 2019"), so text is
read on both sides. Tesseract (Debian's tesseract-ocr with its rus and kor packs, driven in
process through tesserocr, one engine per reader) reads Latin, Cyrillic and Hangul with
digits; nothing is downloaded. Reading a whole frame costs ~0.2 s, so a cheap detector
(a morphological gradient closed along text lines) first finds the text-like bands of a
grey frame, and only those bands are read, each enlarged to a height Tesseract reads well.
Pure: pixels in, lines of text out."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firstseen.errors import FirstSeenError

TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
DEFAULT_LANGUAGES = ("eng", "rus", "kor")
DETECT_WIDTH = 640  # bands are found on a grey copy this wide
READ_HEIGHT = 48  # a band is enlarged (or shrunk) to about this many pixels high before reading
WORD_CONFIDENCE = 40.0  # words Tesseract is less sure of are noise read in the picture around the text
SURE_CONFIDENCE = 85.0  # a band read this surely as it is needs no masked second reading
MASK_SPREAD = 40  # grey levels from the brightest (darkest) strokes that still count as text
TEXT_TRANSITIONS = 3.0  # stroke crossings per band height of width, at least (see _looks_like_text)
TEXT_CONTRAST = 100.0  # grey levels between strokes and background, at least


class TextReaderUnavailableError(FirstSeenError):
    """The OCR engine or a language pack is not installed."""

    code = "ocr_unavailable"


@dataclass(frozen=True, slots=True)
class TextLine:
    """One band of text as read, where it sits (fractions of the frame) and Tesseract's confidence (0-100)."""

    text: str
    confidence: float
    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a line of text cannot be empty")
        if not (0 <= self.x <= 1 and 0 <= self.y <= 1 and 0 < self.w <= 1 and 0 < self.h <= 1):
            raise ValueError(f"a line's box must lie inside the frame: {self}")

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 1),
            "box": {"x": round(self.x, 4), "y": round(self.y, 4), "w": round(self.w, 4), "h": round(self.h, 4)},
        }


def find_tessdata(explicit: str | Path | None = None) -> Path:
    for candidate in ([explicit] if explicit else []) + [os.environ.get("TESSDATA_PREFIX")] + list(TESSDATA_DIRS):
        if candidate and Path(candidate, "eng.traineddata").is_file():
            return Path(candidate)
    raise TextReaderUnavailableError(
        "no Tesseract language data found (looked in TESSDATA_PREFIX and "
        + ", ".join(TESSDATA_DIRS)
        + "): install Debian's tesseract-ocr, tesseract-ocr-rus and tesseract-ocr-kor, or turn on-screen "
        "text off with FIRSTSEEN_OCR=off"
    )


def text_bands(gray: np.ndarray, *, max_bands: int = 6) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1, in the given frame's pixels) of text-like bands, top to bottom.

    Text is dense in strong, short edges lined up horizontally: the morphological gradient
    finds the edges, Otsu keeps the strong ones, a closing as wide as a few letters joins a
    word's letters and a line's words, and the shapes left are kept if they are line-shaped
    (wide, low, well filled). Cheap (~2 ms a frame), so every read can afford it."""
    h, w = gray.shape[:2]
    scale = DETECT_WIDTH / w if w > DETECT_WIDTH else 1.0
    small = (
        cv2.resize(gray, (round(w * scale), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if scale != 1.0
        else gray
    )
    gradient = cv2.morphologyEx(small, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    _, edges = cv2.threshold(gradient, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if edges.mean() > 0.5 * 255:  # a frame of texture everywhere: Otsu split noise, not text
        return []
    joined = cv2.morphologyEx(edges, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 3)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    sh, sw = small.shape[:2]
    bands = []
    pieces = [(x, y, bw, bh) for x, y, bw, bh, _ in stats[1:count] if 5 <= bh <= 0.25 * sh]
    for x, y, bw, bh in _same_lines(pieces):
        filled = edges[y : y + bh, x : x + bw].mean() / 255
        if not (7 <= bh <= 0.25 * sh and bw >= 1.5 * bh and bw >= 0.04 * sw and 0.15 <= filled <= 0.9):
            continue
        pad = max(2, bh // 4)
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(sw, x + bw + pad), min(sh, y + bh + pad)
        box = (round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale))
        if _looks_like_text(gray[box[1] : box[3], box[0] : box[2]]):  # at full size: thin strokes merge when small
            bands.append(box)
    bands.sort(key=lambda b: (b[3] - b[1]) * (b[2] - b[0]), reverse=True)
    return sorted(bands[:max_bands], key=lambda b: (b[1], b[0]))


def _same_lines(pieces: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Pieces of one line joined: a wide space between words (or a comma) splits a line into
    several shapes, and a line read in pieces loses the words that join them."""
    merged: list[list[int]] = []
    for x, y, w, h in sorted(pieces):
        for m in merged:
            overlap = min(m[1] + m[3], y + h) - max(m[1], y)
            if overlap >= 0.6 * min(m[3], h) and 0.5 <= h / m[3] <= 2 and x - (m[0] + m[2]) <= 1.5 * max(m[3], h):
                x1, y0, y1 = max(m[0] + m[2], x + w), min(m[1], y), max(m[1] + m[3], y + h)
                m[1], m[2], m[3] = y0, x1 - m[0], y1 - y0
                break
        else:
            merged.append([x, y, w, h])
    return [(m[0], m[1], m[2], m[3]) for m in merged]


def _looks_like_text(band: np.ndarray) -> bool:
    """A line of text crosses many strokes at one high contrast: along its middle rows the
    binarised band flips at least TEXT_TRANSITIONS times per band height of width (measured:
    4.0 and more for drawn lines in every script, at most 2.3 for 95% of scene edges), with
    the strokes at least TEXT_CONTRAST grey levels from the background (scene bands: median 92)."""
    h, w = band.shape[:2]
    if h < 4 or w < 4 or np.percentile(band, 95) - np.percentile(band, 5) < TEXT_CONTRAST:
        return False
    middle = np.ascontiguousarray(band[h // 4 : max(h // 4 + 1, 3 * h // 4)])
    _, binary = cv2.threshold(middle, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    flips = (np.diff(binary.astype(np.int16), axis=1) != 0).sum(axis=1).mean()
    return flips / w * h >= TEXT_TRANSITIONS


def _is_hangul_syllable(token: str) -> bool:
    return len(token) == 1 and "\uac00" <= token <= "\ud7a3"


def _enough_text(text: str) -> bool:
    """Three letters or digits at least (two Hangul syllables: a Korean word): less is what a
    scene's edges read as."""
    letters = [c for c in text if c.isalnum()]
    return len(letters) >= 3 or (len(letters) == 2 and all(_is_hangul_syllable(c) for c in letters))


def _clean(text: str) -> str:
    """One line: Unicode NFC, whitespace collapsed, the box edges Tesseract reads as marks cut
    from its ends, and Hangul syllables Tesseract reads apart ("기 자 회 견") joined into their word."""
    tokens = unicodedata.normalize("NFC", text).split()
    joined: list[str] = []
    run = False  # the last token was made of single syllables only
    for token in tokens:
        single = _is_hangul_syllable(token)
        if single and run:
            joined[-1] += token
        else:
            joined.append(token)
        run = single or (run and single)
    return " ".join(joined).strip(" |_~—–[](){}「」")


class TesseractReader:
    """Reads the text bands of frames. One Tesseract engine per reader: not shared between threads."""

    name = "tesseract"

    def __init__(
        self,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        *,
        tessdata: str | Path | None = None,
        min_confidence: float = 70.0,
    ):
        try:
            from tesserocr import PSM, PyTessBaseAPI
        except ImportError as exc:
            raise TextReaderUnavailableError(
                "on-screen text needs the tesserocr package (pip install tesserocr), or FIRSTSEEN_OCR=off"
            ) from exc
        folder = find_tessdata(tessdata)
        missing = [lang for lang in languages if not (folder / f"{lang}.traineddata").is_file()]
        if missing:
            raise TextReaderUnavailableError(
                f"Tesseract language data missing in {folder}: {', '.join(missing)} "
                f"(Debian: apt-get install " + " ".join(f"tesseract-ocr-{lang}" for lang in missing) + ")"
            )
        self.languages = tuple(languages)
        self.min_confidence = min_confidence
        self.config_id = f"tesseract/{'+'.join(self.languages)}"
        self._api = PyTessBaseAPI(path=str(folder) + os.sep, lang="+".join(self.languages), psm=PSM.SINGLE_BLOCK)

    def read(self, rgb: np.ndarray) -> list[TextLine]:
        """The lines of text in one frame (RGB or grey), top to bottom, as read."""
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        h, w = gray.shape[:2]
        lines = []
        for x0, y0, x1, y1 in text_bands(gray):
            band = gray[y0:y1, x0:x1]
            factor = min(4.0, READ_HEIGHT / max(1, y1 - y0))
            if abs(factor - 1) > 0.1:
                band = cv2.resize(
                    band, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
                )
            text, confidence = self._read_band(band)
            if confidence >= self.min_confidence and _enough_text(text):
                lines.append(TextLine(text, confidence, x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h))
        return lines

    def _read_band(self, band: np.ndarray) -> tuple[str, float]:
        """The band as it is; where that reads poorly, its brightest or darkest strokes alone
        (white captions with a shadow over a busy picture read well only as a mask)."""
        best = self._words(band)
        if best[1] >= SURE_CONFIDENCE or best[1] < WORD_CONFIDENCE:
            return best  # sure already, or nothing like text: a mask would not make words of it
        for mask in (band >= np.percentile(band, 97) - MASK_SPREAD, band <= np.percentile(band, 3) + MASK_SPREAD):
            read = self._words(np.where(mask, 0, 255).astype(np.uint8))
            if read[1] > best[1]:
                best = read
        return best

    def _words(self, band: np.ndarray) -> tuple[str, float]:
        """The words read with confidence, joined, and their mean confidence weighted by length."""
        from PIL import Image
        from tesserocr import RIL, iterate_level

        self._api.SetImage(Image.fromarray(np.ascontiguousarray(band)))
        if not self._api.Recognize():
            return "", 0.0
        kept = []
        for word in iterate_level(self._api.GetIterator(), RIL.WORD):
            try:
                text, confidence = word.GetUTF8Text(RIL.WORD).strip(), float(word.Confidence(RIL.WORD))
            except RuntimeError:  # an empty word box
                continue
            if any(c.isalnum() for c in text) and confidence >= WORD_CONFIDENCE:
                kept.append((text, confidence))
        if not kept:
            return "", 0.0
        weight = sum(len(t) for t, _ in kept)
        return _clean(" ".join(t for t, _ in kept)), sum(len(t) * c for t, c in kept) / weight

    def close(self) -> None:
        self._api.End()

    def __enter__(self) -> TesseractReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(enabled: bool, languages: str) -> tuple[TesseractReader | None, str | None]:
    """The reader the settings ask for (languages comma-separated), or None and why there is
    none: turned off, or not installed. Callers that can go on without text (packs, the
    nightly job) report the reason instead of failing."""
    if not enabled:
        return None, "not read (FIRSTSEEN_OCR=false)"
    try:
        return TesseractReader([lang.strip() for lang in languages.split(",") if lang.strip()]), None
    except TextReaderUnavailableError as exc:
        return None, f"not read: {exc}"
