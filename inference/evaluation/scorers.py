"""What turns generated images into the features ``metrics.py`` takes: CLIP towers for CLIP-TI, the miniature world's
attribute detectors for its analogue, and image feature extractors for FID/KID. Identity scorers (face stack,
identity judge) are in ``identity_scorers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from namespace.images import pil_images
from namespace.miniature import AttributeDetector
from namespace.miniature.captions import EMOTION_WORDS, SCENE_WORDS, STYLE_WORDS
from namespace.seeding import seeded

from .metrics import attribute_ti, clip_ti

INCEPTION = "inception"
ATTRIBUTE_WORDS = {"scene": SCENE_WORDS, "emotion": EMOTION_WORDS, "style": STYLE_WORDS}


class ClipTextImageScorer:
    """An open_clip model with both towers: images and prompts → unit embeddings, and their CLIP-TI.

    Args:
        model: an open_clip model name (``"ViT-L-14"``; this package's tiny configs, e.g. ``MagicNaming-Tiny-TI``,
            are registered too).
        pretrained: an open_clip pretrained tag (``"openai"``) or a local checkpoint; None: random weights (tests of
            the plumbing only, never reported numbers).
        device: where the model runs.
        seed: seeds the random weights when ``pretrained`` is None.
        batch_size: images or prompts per forward pass.
    """

    def __init__(
        self,
        model: str,
        pretrained: str | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        batch_size: int = 32,
    ) -> None:
        import open_clip

        from namespace.encoder.towers import register_model_configs

        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        register_model_configs()
        try:
            with seeded(seed):
                self.model, _, self.preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained)
        except RuntimeError as error:
            raise RuntimeError(
                f"could not load open_clip model {model!r} with pretrained={pretrained!r}: {error}"
            ) from error
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model)
        self.device, self.batch_size = torch.device(device), batch_size

    @torch.no_grad()
    def image_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB PIL images → (n, E) float32 unit rows (on the CPU), through the model's own preprocessing."""
        images = pil_images(images, "images")
        rows = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack([self.preprocess(image) for image in images[start : start + self.batch_size]])
            rows.append(self.model.encode_image(pixels.to(self.device), normalize=True).float().cpu())
        return torch.cat(rows)

    @torch.no_grad()
    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts → (n, E) float32 unit rows (on the CPU); prompts longer than the context are truncated."""
        prompts = list(prompts)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts: expected a non-empty list of strings, got {prompts!r:.200}")
        rows = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(prompts[start : start + self.batch_size]).to(self.device)
            rows.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(rows)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> float:
        """CLIP-TI (``metrics.clip_ti``) of images drawn from ``prompts``, one prompt per image."""
        if len(images) != len(prompts):
            raise ValueError(f"prompts: expected one per image ({len(images)}), got {len(prompts)}")
        return clip_ti(self.image_features(images), self.text_features(prompts))


def asked_attributes(prompt: str) -> dict[str, str]:
    """The miniature world's attributes a prompt asks for, read from the caption words of ``captions.py``:
    ``"a photo of a person smiling on a beach"`` → ``{"scene": "beach", "emotion": "smiling"}``."""
    return {
        attribute: value
        for attribute, words in ATTRIBUTE_WORDS.items()
        for value, phrase in words.items()
        if phrase in prompt
    }


def attributes_followed(
    detector: AttributeDetector, images: Sequence[Image.Image], asked: Sequence[Mapping[str, str] | None]
) -> list[bool | None]:
    """Per image, whether the detector finds every attribute its prompt asked for; None where it asked nothing."""
    if len(images) != len(asked):
        raise ValueError(f"asked: expected one entry per image ({len(images)}), got {len(asked)}")
    found = detector.detect(images)  # attribute → each image's label
    return [all(found[key][i] == value for key, value in a.items()) if a else None for i, a in enumerate(asked)]


class AttributeScorer:
    """The miniature world's CLIP-TI analogue: its attribute detectors check each image for what its prompt asked.

    Args:
        world: a miniature world folder (its ``detectors/``), or a loaded ``AttributeDetector``.
    """

    def __init__(self, world: str | os.PathLike | AttributeDetector) -> None:
        if isinstance(world, AttributeDetector):
            self.detector = world
        else:
            folder = Path(world) / "detectors"
            if not folder.is_dir():
                raise FileNotFoundError(f"world: expected a miniature world folder with detectors/, got {world}")
            self.detector = AttributeDetector.load(folder)

    def followed(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[bool | None]:
        """Per image, whether all the attributes its prompt asks for are detected; None where it asks nothing."""
        if len(images) != len(prompts):
            raise ValueError(f"prompts: expected one per image ({len(images)}), got {len(prompts)}")
        return attributes_followed(self.detector, images, [asked_attributes(p) for p in prompts])

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> float:
        """``metrics.attribute_ti`` of images drawn from ``prompts``: 100 × the share of images (among those whose
        prompt asks for an attribute) that show every attribute asked; NaN when no prompt asks for one."""
        return attribute_ti(self.followed(images, prompts))


class ClipImageFeatures(nn.Module):
    """(B, 3, H, W) uint8 → (B, E) embeddings of a frozen open_clip image tower, after its own resize, crop and
    normalisation: the input convention of torchmetrics' Inception, so either can feed FID/KID."""

    def __init__(self, model: str, pretrained: str | None, seed: int = 0) -> None:
        import open_clip

        from namespace.encoder import TowerConfig
        from namespace.encoder.towers import ImageTower, register_model_configs

        super().__init__()
        register_model_configs()
        config = open_clip.get_model_config(model)
        if config is None:
            raise ValueError(f"image_features: expected {INCEPTION!r} or an open_clip model name, got {model!r}")
        self.tower = ImageTower(
            TowerConfig(model=model, pretrained=pretrained, embed_dim=config["embed_dim"], seed=seed)
        )
        self.num_features = config["embed_dim"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tower(self.tower.tensor_preprocess(images.float() / 255))


def image_distance_extractor(
    name: str | nn.Module, pretrained: str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The feature extractor FID and KID compare images with: (B, 3, H, W) uint8 → (B, d) features.

    Args:
        name: ``"inception"``: torchmetrics' FID Inception v3 (2048 pool features; the standard, its weights are
            downloaded on first use, so never in offline tests); an open_clip model name (offline with a local
            ``pretrained`` checkpoint; FID/KID then differ from Inception's and are comparable only among
            themselves); or an ``nn.Module`` taking that input, returned as is.
        pretrained: the open_clip weights (ignored for ``inception``).
        device: where the extractor runs.
    """
    if isinstance(name, nn.Module):
        return name.to(device).eval()
    if name == INCEPTION:
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3

            extractor = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(
                f"image_features: {INCEPTION!r} needs torch-fidelity: pip install 'magicnaming[eval]' ({error})"
            ) from error
        return extractor.to(device).eval()
    return ClipImageFeatures(name, pretrained).to(device).eval()


@torch.no_grad()
def distance_features(extractor: nn.Module, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
    """Images of one size → (n, d) float64 features for ``metrics.frechet_distance`` / ``kernel_distance``.

    Memory: one batch of pixels at a time.
    """
    images = pil_images(images, "images")
    sizes = {image.size for image in images}
    if len(sizes) > 1:
        raise ValueError(f"images: expected one size (a batch for the feature extractor), got {sorted(sizes)}")
    device = next(extractor.parameters(), torch.empty(0)).device
    rows = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([np.asarray(image.convert("RGB")) for image in images[start : start + batch_size]])
        pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W) uint8
        rows.append(extractor(pixels.to(device)).double().cpu())
    return torch.cat(rows)


__all__ = [
    "AttributeScorer",
    "ClipImageFeatures",
    "ClipTextImageScorer",
    "asked_attributes",
    "attributes_followed",
    "distance_features",
    "image_distance_extractor",
]
