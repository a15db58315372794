"""The evaluation's negatives kept apart: pools share no package, none holds test footage, sides share no source."""

from __future__ import annotations

from pathlib import Path

import fetch_footage  # noqa: E402
import image_pool  # noqa: E402
import numpy as np
import unrelated  # noqa: E402


def test_pools_are_disjoint_and_never_hold_the_footage():
    packages = [set(p) for p in image_pool.POOLS.values()]
    assert sum(len(p) for p in packages) == len(set().union(*packages))
    footage_packages = {origin for origin, _ in fetch_footage.FILES.values()}
    assert not footage_packages & set().union(*packages)
    assert all("=" not in version and version for p in image_pool.POOLS.values() for version in p.values())


def test_every_kind_of_unrelated_footage_is_made_and_two_seeds_differ(tmp_path):
    from firstseen.media.decode import sample_frames

    for kind in unrelated.KINDS:
        if kind in unrelated.PHOTO_KINDS:
            continue
        a = unrelated.make_unrelated(kind, [], 1, tmp_path / f"{kind}-1.mp4", seconds=2.0)
        b = unrelated.make_unrelated(kind, [], 2, tmp_path / f"{kind}-2.mp4", seconds=2.0)
        fa = [f.rgb for f in sample_frames(a, fps=1.0, max_side=160)]
        fb = [f.rgb for f in sample_frames(b, fps=1.0, max_side=160)]
        assert len(fa) >= 2 and not np.array_equal(fa[0], fb[0]), kind


def test_sources_planned_from_pictures_never_share_one_while_pictures_last():
    pictures = [Path(f"p{i}.jpg") for i in range(60)]
    plan = unrelated.plan_sources(27, pictures, seed=3)
    used = [p for _, chosen, _ in plan for p in chosen]
    assert len(used) == len(set(used)) and {k for k, _, _ in plan} == set(unrelated.KINDS)
    assert "chrome" in unrelated.KINDS


def test_screenshots_of_one_program_share_its_chrome_and_nothing_else(tmp_path):
    """The look-alike that fooled geometry alone: one side's screenshots share toolbar, inset,
    compass and play button over different pictures; the other side's program looks different."""
    from PIL import Image

    from firstseen.media.decode import sample_frames

    pictures = []
    for i in range(2):
        rng = np.random.default_rng(i)
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)).save(path)
        pictures.append(path)

    def frame(pictures: list, seed: int, design: int) -> np.ndarray:
        path = unrelated.make_unrelated("chrome", pictures, seed, tmp_path / f"{seed}-{design}.mp4", 2.0, design=design)
        return next(iter(sample_frames(path, fps=1.0, max_side=480))).rgb

    first = [frame([p], i, 7) for i, p in enumerate(pictures)]
    other = frame(pictures[:1], 0, 8)
    toolbar = (slice(0, 24), slice(None))
    diff = lambda a, b, region: float(np.abs(a[region].astype(int) - b[region].astype(int)).mean())  # noqa: E731
    assert diff(first[0], first[1], toolbar) < 3  # the same program (up to the codec)
    assert diff(first[0], first[1], (slice(60, 110), slice(150, 200))) > 30  # over different pictures
    assert diff(first[0], other, toolbar) > 10  # another side's program


def test_a_distractor_picture_that_is_part_of_a_negative_one_is_dropped(tmp_path):
    """A logo that is also a corner of a splash screen: SSCD scores the whole pictures as
    unrelated, so only the geometry sees that a negative holding one truly matches the other."""
    import evalkit
    from PIL import Image, ImageDraw

    def busy(seed: int, size: tuple[int, int]) -> Image.Image:
        r = np.random.default_rng(seed)
        img = Image.new("RGB", size, tuple(int(c) for c in r.integers(0, 255, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(120):
            x, y = int(r.integers(0, size[0])), int(r.integers(0, size[1]))
            w, h = (int(v) for v in r.integers(4, 50, 2))
            draw.rectangle([x, y, x + w, y + h], fill=tuple(int(c) for c in r.integers(0, 255, 3)))
        return img

    logo = busy(1, (200, 150))
    splash = busy(2, (640, 480))
    splash.paste(logo, (20, 300))
    paths = {}
    for name, img in (("logo", logo), ("splash", splash), ("other", busy(3, (400, 300)))):
        paths[name] = tmp_path / f"{name}.png"
        img.save(paths[name])
    kept = evalkit.not_inside([paths["logo"], paths["other"]], [paths["splash"]])
    assert kept == [paths["other"]]


def test_a_work_folder_made_by_other_code_or_for_another_plan_is_made_again(tmp_path):
    """The evaluation's cached archive and videos are reused only by the code and plan that made
    them: a reused archive would measure the code that built it, not the code under test."""
    import evalkit

    code = evalkit.code_fingerprint(evalkit.ARCHIVE_CODE, 7, ["a.mp4"])
    assert code == evalkit.code_fingerprint(evalkit.ARCHIVE_CODE, 7, ["a.mp4"])
    assert code != evalkit.code_fingerprint(evalkit.ARCHIVE_CODE, 8, ["a.mp4"])  # another plan
    assert code != evalkit.code_fingerprint(evalkit.GENERATOR_CODE, 7, ["a.mp4"])  # other code

    folder = tmp_path / "archive"
    assert not evalkit.fresh_folder(folder, code)  # new: nothing to empty
    (folder / "catalog.sqlite").write_text("kept")
    assert not evalkit.fresh_folder(folder, code) and (folder / "catalog.sqlite").exists()
    assert evalkit.fresh_folder(folder, "other code") and not (folder / "catalog.sqlite").exists()
    unmarked = tmp_path / "from-an-older-script"
    unmarked.mkdir()
    (unmarked / "eval-archive.json").write_text("[]")
    assert evalkit.fresh_folder(unmarked, code) and list(unmarked.iterdir()) == [unmarked / ".built-by"]
