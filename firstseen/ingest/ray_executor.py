"""The Ray executor: decoding as Ray tasks on CPU workers, description in a pool of actors that load the model once.

Behind the same interface as the local executor (shared.Executor): paths in, one Described per
video out, in order; the ingest around it (ledger, commits, copy links) is unchanged. A decode
task is a Ray generator that streams one video as chunks of sampled frames; each chunk goes to
the next descriptor actor, which describes it and computes its frame flags and thumbnails with
pipeline.describe_batch, so a video gets the same vectors on either executor. The actors are
made once per executor and serve every claim batch of the run: the model loads once per actor,
not once per batch (Ray Data would make a new actor pool for each dataset). A killed actor is
restarted by Ray and its chunk described again. On a GPU node an actor's onnxruntime takes the
CUDA provider where onnxruntime-gpu replaces onnxruntime (documented, not testable here). CPUs
are handed out in fractions: on two cores a whole CPU per actor beside the decode tasks starves Ray."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from firstseen.descriptors import FrameDescriptor
from firstseen.errors import BadInputError, FirstSeenError, MediaError
from firstseen.ingest.pipeline import Described
from firstseen.params import IngestPolicy
from firstseen.records import FrameVectors, Thumbnails
from firstseen.settings import Settings

DECODE_CPUS = 0.5  # a decode task: FFmpeg on one thread, mostly waiting on the actors
VIDEOS_AHEAD = 2  # videos decoding beyond the one being assembled: the actors never wait on a file's open
CHUNKS_QUEUED_PER_ACTOR = 2  # chunks waiting at each actor: enough to keep it busy, few enough to bound memory
ACTOR_RESTARTS = 3  # a killed actor comes back this many times, its chunks described again


def _decode(path: str, policy: IngestPolicy) -> Iterator[dict]:
    """One video as chunks of sampled frames (a batch each); a decode error ends it as a last, empty chunk."""
    from firstseen.media.decode import sample_frames

    frames: list = []

    def emit(error: str = "") -> dict:
        return {
            "error": error,
            "pts": np.array([f.pts_s for f in frames], np.float64),
            "frames": np.stack([f.rgb for f in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8),
        }

    try:
        for frame in sample_frames(
            path, fps=policy.archive_fps, max_side=policy.decode.max_side, threads=1,
            max_truncation_s=policy.decode.max_truncation_s,
        ):  # fmt: skip
            frames.append(frame)
            if len(frames) >= policy.batch_size:
                yield emit()
                frames = []
        if frames:
            yield emit()
    except MediaError as exc:
        frames = []
        yield emit(str(exc) or "unreadable video")


class _Describer:
    """A Ray actor: the descriptor loaded once, then chunk after chunk described and flagged."""

    def __init__(self, settings: Settings):
        from firstseen.descriptors import create_descriptor

        self.descriptor = create_descriptor(settings.descriptor, settings)

    def ready(self) -> bool:
        return True

    def describe(self, chunk: dict, thumbnail_side: int) -> dict:
        from firstseen.ingest.pipeline import describe_batch

        frames = list(chunk.pop("frames"))
        if frames:
            chunk["vectors"], chunk["informative"], chunk["thumbnails"] = describe_batch(
                frames, self.descriptor, thumbnail_side
            )
        else:
            chunk["vectors"], chunk["informative"], chunk["thumbnails"] = (
                np.zeros((0, self.descriptor.dim), np.float32), np.zeros(0, bool), [],
            )  # fmt: skip
        chunk["actor_pid"] = os.getpid()
        return chunk


class RayExecutor:
    """Paths in, Described out, in order, on a Ray cluster; the actor pool outlives each call."""

    def __init__(self, settings: Settings, actors: int):
        import ray

        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        self.actor_cpus = max(0.25, min(1.0, (cpus - DECODE_CPUS) / actors))
        # On a cluster with GPUs each actor holds (a share of) one, and its model must run
        # there: onnx_device=cuda fails loudly where onnxruntime-gpu is missing.
        self.actor_gpus = min(1.0, gpus / actors) if gpus else 0.0
        update: dict = {"onnx_threads": max(1, int(self.actor_cpus))}
        if self.actor_gpus:
            update["onnx_device"] = "cuda"
        self._settings = settings.model_copy(update=update)
        self._size = actors
        self._actors: list = []
        self.actor_pids: set[int] = set()  # which actor processes described something (a restart is a new one)

    def _pool(self) -> list:
        import ray

        if not self._actors:
            actor = ray.remote(_Describer).options(
                num_cpus=self.actor_cpus, num_gpus=self.actor_gpus,
                max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS,
            )  # fmt: skip
            actors: list = [actor.remote(self._settings) for _ in range(self._size)]
            try:
                ray.get([a.ready.remote() for a in actors])
            except ray.exceptions.RayError as exc:  # the model did not load there: say why, once
                raise FirstSeenError(f"a Ray descriptor actor could not start: {_cause(exc)}") from exc
            self._actors = actors
        return self._actors

    def __call__(self, paths: Iterable[Path], descriptor: FrameDescriptor, policy: IngestPolicy) -> Iterator[Described]:
        import ray

        actors = self._pool()
        decode = ray.remote(_decode).options(
            num_cpus=DECODE_CPUS, _generator_backpressure_num_objects=CHUNKS_QUEUED_PER_ACTOR
        )
        names = iter([str(p) for p in paths])
        decoding: deque = deque()

        def start_next() -> None:
            name = next(names, None)
            if name is not None:
                decoding.append((name, decode.remote(name, policy)))

        for _ in range(1 + VIDEOS_AHEAD):
            start_next()
        turn = 0
        waiting: list = []  # described chunks not yet known done, across videos
        while decoding:
            name, chunks = decoding.popleft()
            start_next()
            described = []
            for chunk in chunks:
                while len(waiting) >= CHUNKS_QUEUED_PER_ACTOR * len(actors):
                    _, waiting = ray.wait(waiting, num_returns=1)
                ref = actors[turn % len(actors)].describe.remote(chunk, policy.thumbnail_max_side)
                turn += 1
                described.append(ref)
                waiting.append(ref)
            try:
                parts = ray.get(described)
            except ray.exceptions.RayError as exc:  # an actor died past its restarts, a worker was lost
                raise FirstSeenError(f"Ray could not describe {name}: {_cause(exc)}") from exc
            waiting = []  # all of them this video's, now done
            self.actor_pids.update(p["actor_pid"] for p in parts)
            yield _assemble(Path(name), parts, descriptor.name, bool(policy.thumbnail_max_side))


def ray_executor(address: str | None, settings: Settings, *, actors: int = 1) -> RayExecutor:
    """An executor on the Ray cluster at address (None: a local one on this machine's cores)."""
    if actors < 1:
        raise BadInputError(f"--ray-actors must be at least 1, got {actors}")
    try:
        import ray
    except ImportError as exc:
        raise FirstSeenError("--executor ray needs Ray: pip install 'firstseen[scale]'") from exc
    if not ray.is_initialized():
        ray.init(
            address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
            log_to_driver=False, configure_logging=False,
        )  # fmt: skip
    return RayExecutor(settings, actors)


def _cause(exc: BaseException) -> str:
    """The first line of what went wrong inside Ray, not its whole remote traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip()
    for line in text.splitlines()[::-1]:
        if "Error:" in line:
            return line.strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _assemble(path: Path, parts: list[dict], descriptor: str, thumbnails: bool) -> Described:
    error = next((p["error"] for p in parts if p["error"]), "")
    if error:
        return Described(path, None, MediaError(error))
    if not parts:
        return Described(path, None, MediaError("no decodable video frames"))
    pts = np.concatenate([p["pts"] for p in parts])
    return Described(
        path,
        FrameVectors(
            descriptor,
            pts,
            np.concatenate([p["vectors"] for p in parts]),
            np.concatenate([np.asarray(p["informative"], bool) for p in parts]),
            Thumbnails.pack([t for p in parts for t in p["thumbnails"]]) if thumbnails else None,
        ),
        None,
    )
