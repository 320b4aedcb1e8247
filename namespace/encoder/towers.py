"""Frozen open_clip image towers: loaded through open_clip's factory, locked, text tower dropped."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from ..seeding import seeded
from .config import TowerConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# open_clip configs this package adds to open_clip's own: the tiny towers used by tests and the demo
# (MagicNaming-Tiny-L, MagicNaming-Tiny-bigG). Their text towers are minimal because the encoder drops them.
MODEL_CONFIGS = Path(__file__).with_name("model_configs")


@functools.cache
def register_model_configs() -> None:
    """Makes this package's open_clip model configs known to ``open_clip.create_model`` (once per process)."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIGS)


class ImageTower(nn.Module):
    """One frozen CLIP image tower with open_clip's own preprocessing: images → (B, E) projected embeddings."""

    def __init__(self, config: TowerConfig) -> None:
        super().__init__()
        import open_clip  # heavy: imported when a tower is built, not when `namespace` is

        register_model_configs()
        self.config = config
        try:
            with seeded(config.seed):  # only random (pretrained=None) weights depend on it
                model, _, preprocess = open_clip.create_model_and_transforms(config.model, pretrained=config.pretrained)
        except RuntimeError as error:
            raise RuntimeError(
                f"could not load open_clip tower {config.model!r} with pretrained={config.pretrained!r}: {error}"
            ) from error
        model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
        self.visual = model.visual.to(DTYPES[config.precision])  # the text tower is dropped here
        self.visual.requires_grad_(False)
        self.visual.eval()
        self.preprocess = preprocess  # Resize → CenterCrop → RGB → ToTensor → Normalize, as the tower was trained
        # Tensors skip the PIL-only steps (RGB conversion and ToTensor are plain callables, not modules);
        # Resize, CenterCrop and Normalize are modules that accept tensors.
        self.tensor_preprocess = transforms.Compose(
            [step for step in preprocess.transforms if isinstance(step, nn.Module)]
        )
        output_dim = getattr(self.visual, "output_dim", None)
        if output_dim is not None and output_dim != config.embed_dim:
            raise ValueError(
                f"towers: {config.model!r} gives {output_dim}-wide image embeddings, but the config says "
                f"embed_dim={config.embed_dim}"
            )

    def train(self, mode: bool = True) -> ImageTower:
        """The tower stays in eval mode: it is frozen (no dropout, fixed norm statistics)."""
        return super().train(False)

    def pixels(self, images: list[Image.Image | torch.Tensor]) -> torch.Tensor:
        """Preprocesses RGB PIL images or (3, H, W) tensors in [0, 1] into a (B, 3, S, S) batch."""
        return torch.stack(
            [
                self.tensor_preprocess(image) if isinstance(image, torch.Tensor) else self.preprocess(image)
                for image in images
            ]
        )

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels → (B, E) float32 projected image embeddings."""
        dtype = next(self.visual.parameters()).dtype
        return self.visual(pixels.to(dtype)).float()
