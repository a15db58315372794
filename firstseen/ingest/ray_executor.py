"""The Ray executor: decoding as Ray Data tasks on CPU workers, description in actors that load the model once.

Behind the same interface as the local executor (shared.Executor): paths in, one Described per
video out, in order; the ingest around it (ledger, commits, copy links) is unchanged. Decode
tasks stream each video as chunks of sampled frames; descriptor actors describe a chunk and
compute its frame flags and thumbnails, exactly as pipeline.describe_videos does, so a video
gets the same vectors on either executor. On a GPU node an actor's onnxruntime takes the CUDA
provider where onnxruntime-gpu replaces onnxruntime (documented, not testable here). CPUs are
handed out in fractions: on two cores a whole CPU per actor beside the decode tasks starves Ray."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from firstseen.descriptors import FrameDescriptor
from firstseen.errors import FirstSeenError, MediaError
from firstseen.ingest.pipeline import Described
from firstseen.params import IngestPolicy
from firstseen.records import FrameVectors, Thumbnails
from firstseen.settings import Settings

DECODE_CPUS = 0.5  # a decode task: FFmpeg on one thread, mostly waiting on the actors


def _decode(row: dict, policy: IngestPolicy) -> Iterator[dict]:
    """One video as chunks of sampled frames (a batch each), then its end or its error."""
    from firstseen.media.decode import sample_frames

    path, chunk = row["path"], 0
    frames: list = []

    def emit(last: bool, error: str = "") -> dict:
        return {
            "path": path, "chunk": chunk, "last": last, "error": error,
            "pts": np.array([f.pts_s for f in frames], np.float64),
            "frames": np.stack([f.rgb for f in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8),
        }  # fmt: skip

    try:
        for frame in sample_frames(
            path, fps=policy.archive_fps, max_side=policy.decode.max_side, threads=1,
            max_truncation_s=policy.decode.max_truncation_s,
        ):  # fmt: skip
            frames.append(frame)
            if len(frames) >= policy.batch_size:
                yield emit(False)
                chunk, frames = chunk + 1, []
        yield emit(True)
    except MediaError as exc:
        frames = []
        yield emit(True, str(exc) or "unreadable video")


class _Describer:
    """A Ray actor: the descriptor loaded once, then chunk after chunk described and flagged."""

    def __init__(self, settings: Settings, thumbnail_side: int):
        from firstseen.descriptors import create_descriptor

        self.descriptor = create_descriptor(settings.descriptor, settings)
        self.thumbnail_side = thumbnail_side

    def __call__(self, row: dict) -> dict:
        from firstseen.ingest.pipeline import describe_batch

        frames = list(row.pop("frames"))
        if frames:
            row["vectors"], row["informative"], row["thumbnails"] = describe_batch(
                frames, self.descriptor, self.thumbnail_side
            )
        else:
            row["vectors"], row["informative"], row["thumbnails"] = (
                np.zeros((0, self.descriptor.dim), np.float32), np.zeros(0, bool), [],
            )  # fmt: skip
        return row


def ray_executor(address: str | None, settings: Settings, *, actors: int = 1):
    """An executor on the Ray cluster at address (None: a local one on this machine's cores)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise FirstSeenError("--executor ray needs Ray: pip install 'firstseen[scale]'") from exc
    if not ray.is_initialized():
        ray.init(
            address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
            log_to_driver=False, configure_logging=False,
        )  # fmt: skip
    cpus = float(ray.cluster_resources().get("CPU", 1))
    actor_cpus = max(0.25, min(1.0, (cpus - DECODE_CPUS) / actors))
    actor_settings = settings.model_copy(update={"onnx_threads": max(1, int(actor_cpus))})

    def execute(paths: Iterable[Path], descriptor: FrameDescriptor, policy: IngestPolicy) -> Iterator[Described]:
        names = [str(p) for p in paths]
        if not names:
            return
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        dataset = (
            ray.data.from_items([{"path": p} for p in names], override_num_blocks=len(names))
            .flat_map(_decode, fn_kwargs={"policy": policy}, num_cpus=DECODE_CPUS)  # type: ignore[arg-type]
            .map(
                _Describer,  # type: ignore[arg-type]
                fn_constructor_kwargs={"settings": actor_settings,
                                                   "thumbnail_side": policy.thumbnail_max_side},
                concurrency=actors, num_cpus=actor_cpus,
            )
        )  # fmt: skip
        parts: list[dict] = []
        for row in dataset.iter_rows():
            parts.append(row)
            if row["last"]:
                yield _assemble(Path(row["path"]), parts, descriptor.name, bool(policy.thumbnail_max_side))
                parts = []

    return execute


def _assemble(path: Path, parts: list[dict], descriptor: str, thumbnails: bool) -> Described:
    error = parts[-1]["error"]
    if error:
        return Described(path, None, MediaError(error))
    pts = np.concatenate([p["pts"] for p in parts])
    if len(pts) == 0:
        return Described(path, None, MediaError("no decodable video frames"))
    return Described(
        path,
        FrameVectors(
            descriptor,
            pts,
            np.concatenate([p["vectors"] for p in parts if len(p["vectors"])]),
            np.concatenate([np.asarray(p["informative"], bool) for p in parts]),
            Thumbnails.pack([t for p in parts for t in p["thumbnails"]]) if thumbnails else None,
        ),
        None,
    )
