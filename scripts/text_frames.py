"""Frames with known on-screen text in each script served (Latin, Cyrillic, Hangul, dates), for OCR tests, bench_ocr."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = {
    "latin": [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ],
    "cyrillic": [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ],
    "hangul": [
        "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf",
        "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    ],
}
FONTS["dates"] = FONTS["latin"]

TEXTS = {
    "latin": [
        "LIVE: Moscow, 30 September 2022",
        "Vladivostok summit",
        "BREAKING NEWS",
        "Eastern Economic Forum",
        "Press conference, Seoul",
        "Kyiv, 24 February 2022",
        "Official visit to Pyongyang",
        "Toast at the state dinner",
        "Helsinki, 16 July 2018",
        "Minister of Foreign Affairs",
    ],
    "cyrillic": [
        "ВЛАДИВОСТОК, 25 апреля 2019",
        "Прямой эфир",
        "Москва, Кремль",
        "Восточный экономический форум",
        "Пресс-конференция",
        "Срочные новости",
        "Официальный визит",
        "Санкт-Петербург",
        "Министр иностранных дел",
        "Переговоры в Сочи",
    ],
    "hangul": [
        "블라디보스토크 정상회담",
        "속보",
        "평양 공식 방문",
        "기자회견",
        "외교부 장관",
        "서울 청와대",
        "생중계",
        "남북 정상회담",
        "국빈 만찬",
        "러시아 대통령",
    ],
    "dates": [
        "25.04.2019 14:32",
        "2022-09-30",
        "30/09/2022 18:05",
        "12:45:07",
        "2019.04.25",
        "16.07.2018",
        "04/25/2019",
        "2023-04-08 10:20",
        "1906",
        "24.02.2022 05:00",
    ],
}


@dataclass(frozen=True)
class TextFrame:
    rgb: np.ndarray
    script: str
    text: str
    box: tuple[float, float, float, float]  # where the text was drawn, fractions of the frame


def available(script: str) -> bool:
    return any(Path(f).is_file() for f in FONTS[script])


def draw_text_frame(
    background: np.ndarray, script: str, text: str, rng: np.random.Generator, *, style: str | None = None
) -> TextFrame:
    """Text over a picture as broadcasters burn it in: a chyron bar at the bottom, a caption
    with a shadow over the picture, or a top-corner label."""
    font_path = next(f for f in FONTS[script] if Path(f).is_file())
    img = Image.fromarray(background.copy())
    w, h = img.size
    style = style or str(rng.choice(["chyron", "caption", "label"]))
    size = int(h * rng.uniform(0.05, 0.075))
    font = ImageFont.truetype(font_path, size)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    while tw > 0.9 * w and size > 10:
        size -= 2
        font = ImageFont.truetype(font_path, size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
    if style == "chyron":
        y = int(h * 0.82)
        bar = tuple(int(c) for c in rng.integers(0, 160, 3))
        draw.rectangle([0, y - th // 2, w, y + th + th // 2], fill=bar)
        x = int(w * 0.04)
        draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255))
    elif style == "caption":
        y = int(h * rng.uniform(0.6, 0.75))
        x = (w - tw) // 2
        for dx, dy in ((-2, 0), (2, 0), (0, -2), (0, 2), (2, 2)):
            draw.text((x - left + dx, y - top + dy), text, font=font, fill=(0, 0, 0))
        draw.text((x - left, y - top), text, font=font, fill=(255, 255, 255))
    else:
        x, y = int(w * 0.03), int(h * 0.05)
        draw.rectangle([x - 6, y - 6, x + tw + 6, y + th + 6], fill=(255, 255, 255))
        draw.text((x - left, y - top), text, font=font, fill=(10, 10, 10))
    return TextFrame(np.asarray(img), script, text, (x / w, y / h, tw / w, th / h))


def character_accuracy(read: str, truth: str) -> float:
    """1 - character error rate (Levenshtein over characters, spaces ignored), floored at 0."""
    a, b = "".join(read.split()), "".join(truth.split())
    if not b:
        return 1.0 if not a else 0.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return max(0.0, 1.0 - previous[-1] / len(b))


def reversed_captioned_crop(
    source,
    out,
    *,
    start_s: float = 30.0,
    seconds: float = 6.0,
    fps: float = 12.5,
    caption: str = "MOSCOW, 30 September 2022",
) -> dict:
    """A manipulated clip as the cases we serve: footage played backwards, cropped to its left
    70%, with a new caption burned into a chyron. source: an edits.FrameSource. Returns the
    truth: the source window, the crop box (fractions of the source frame), the caption."""
    from edits import _write_video

    rng = np.random.default_rng(11)
    frames = []
    for k in range(int(seconds * fps)):
        rgb = source.frame_at(start_s + seconds - k / fps)
        h, w = rgb.shape[:2]
        crop = np.ascontiguousarray(rgb[:, : int(w * 0.7) // 2 * 2])
        frames.append(draw_text_frame(crop, "latin", caption, rng, style="chyron").rgb)
    h, w = frames[0].shape[:2]
    _write_video(out, iter(frames), (w, h), fps)
    return {
        "path": out,
        "source_start": start_s,
        "source_end": start_s + seconds,
        "crop": (0.0, 0.0, 0.7, 1.0),
        "caption": caption,
    }
