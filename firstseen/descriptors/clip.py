"""Optional CLIP image embeddings (open_clip) from a local checkpoint; never downloads weights."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from firstseen.descriptors import register
from firstseen.errors import DescriptorUnavailableError


class ClipSettings(BaseSettings):
    """The CLIP plug-in's knobs: FIRSTSEEN_CLIP_MODEL_NAME, _CLIP_CHECKPOINT_PATH, _CLIP_THREADS (torch's)."""

    model_config = SettingsConfigDict(env_prefix="FIRSTSEEN_", extra="ignore")

    clip_model_name: str = "ViT-B-32"
    clip_checkpoint_path: Path | None = None
    clip_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)


class ClipDescriptor:
    """Semantic rather than copy-detection similarity; useful as a second opinion, so it is
    an extra and never the default."""

    metric = "inner_product"

    def __init__(self, model_name: str, checkpoint: Path, threads: int = 2):
        if not checkpoint.is_file():
            raise DescriptorUnavailableError(f"CLIP checkpoint not found: {checkpoint}")
        try:
            import open_clip
            import torch
        except Exception as exc:  # torchvision builds that fail to import raise more than ImportError
            raise DescriptorUnavailableError(
                "the clip descriptor needs the 'clip' extra (torch==2.13.0, open_clip_torch and a "
                f"torchvision that imports beside it): {exc}"
            ) from exc
        torch.set_num_threads(threads)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
        self._model = model.eval()
        self._preprocess = preprocess
        self._torch = torch
        self.name = "clip"
        self.dim = int(model.visual.output_dim)
        self.config_id = f"clip/{model_name}/{checkpoint.name}"

    def describe(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        with self._torch.inference_mode():
            batch = self._torch.stack([self._preprocess(Image.fromarray(f)) for f in frames])
            feats = self._model.encode_image(batch).float().numpy()
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


@register("clip", settings=ClipSettings)
def _make_clip(options: ClipSettings, batch_size: int) -> ClipDescriptor:
    if options.clip_checkpoint_path is None:
        raise DescriptorUnavailableError(
            "the clip descriptor needs FIRSTSEEN_CLIP_CHECKPOINT_PATH (a local open_clip "
            "checkpoint); weights are never downloaded"
        )
    return ClipDescriptor(options.clip_model_name, options.clip_checkpoint_path, options.clip_threads)
