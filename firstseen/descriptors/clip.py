"""Optional CLIP image embeddings (open_clip) from a local checkpoint; never downloads weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firstseen.descriptors import register
from firstseen.errors import DescriptorUnavailableError

if TYPE_CHECKING:
    from firstseen.settings import Settings


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
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=str(checkpoint)
        )
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


@register("clip")
def _make_clip(settings: Settings) -> ClipDescriptor:
    if settings.clip_checkpoint_path is None:
        raise DescriptorUnavailableError(
            "the clip descriptor needs FIRSTSEEN_CLIP_CHECKPOINT_PATH (a local open_clip "
            "checkpoint); weights are never downloaded"
        )
    return ClipDescriptor(settings.clip_model_name, settings.clip_checkpoint_path, settings.onnx_threads)
