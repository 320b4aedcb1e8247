"""Every number ``magicnaming evaluate`` reports, as a pure function of features or embeddings.

Each function states its definition. The features come from ``scorers.py`` (CLIP towers, the attribute detectors,
a face stack or the miniature world's identity judge, an image feature extractor for FID/KID). Identity rows follow
the face stack's convention: one row per generated image, a NaN row where no face was found.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

Rows = np.ndarray | torch.Tensor  # (n, d)


def clip_ti(image_features: Rows, text_features: Rows) -> float:
    """The paper's CLIP text–image score: ``100 · mean_i cos(image_i, text_i)``, each image with its own prompt.

    Rows need not be unit: they are normalised here. No clipping at 0 (torchmetrics' CLIPScore clips; with trained
    CLIP towers an image–prompt cosine is positive anyway, so the two agree on real models).

    Args:
        image_features: (n, E) CLIP image embeddings.
        text_features: (n, E) CLIP text embeddings of the prompts the images were drawn from, in the same order.
    """
    images = _rows(image_features, "image_features")
    texts = _rows(text_features, "text_features")
    _same_shape(images, texts, "image_features", "text_features")
    return float(100 * (_unit(images) * _unit(texts)).sum(axis=1).mean())


def attribute_ti(followed: Sequence[bool | None]) -> float:
    """The miniature world's CLIP-TI analogue: ``100 · (images whose asked attributes were all detected) / (images
    whose prompt asks for an attribute)``; ``None`` entries (prompts that ask nothing) are not counted. NaN when no
    image asks for anything."""
    asked = [bool(f) for f in followed if f is not None]
    return 100 * sum(asked) / len(asked) if asked else math.nan


def face_detection_rate(embeddings: Rows) -> float:
    """The share of images with a face: rows without NaN over all rows.

    Args:
        embeddings: (n, d) identity rows, NaN where no face was found.
    """
    rows = _rows(embeddings, "embeddings")
    return float(_with_face(rows).mean())


def reference_embedding(photo_embeddings: Rows) -> np.ndarray:
    """A person's reference identity: the mean of their reference photos' rows that have a face, normalised.

    Args:
        photo_embeddings: (m, d) rows of the reference photos, NaN where no face was found.

    Returns:
        (d,) float64 unit vector.
    """
    rows = _rows(photo_embeddings, "reference")
    found = rows[_with_face(rows)]
    if not len(found):
        raise ValueError(f"reference: expected at least one reference photo with a face, got none of {len(rows)}")
    return _unit(_unit(found).mean(axis=0, keepdims=True))[0]


def reference_similarity(embeddings: Rows, reference: Rows) -> float:
    """Mean cosine between each generated image's identity row and the person's reference identity.

    Rows with NaN (no face found) are left out, so read it beside ``face_detection_rate``: a method that loses the
    face is not rewarded here, but its lost images are only visible there.

    Args:
        embeddings: (n, d) identity rows of the generated images, NaN where no face was found.
        reference: (d,) the reference identity, or (m, d) rows of the reference photos (their mean with a face,
            normalised: ``reference_embedding``).

    Returns:
        The mean cosine, NaN when no generated image has a face.
    """
    rows = _rows(embeddings, "embeddings")
    reference = _array(reference)
    target = reference_embedding(reference[None] if reference.ndim == 1 else reference)  # (d,)
    if target.shape[0] != rows.shape[1]:
        raise ValueError(
            f"reference: expected width {rows.shape[1]} (the embeddings'), got {target.shape[0]}: "
            "embedded by another identity model?"
        )
    found = rows[_with_face(rows)]
    return float((_unit(found) @ target).mean()) if len(found) else math.nan


def identity_consistency(embeddings: Rows) -> float:
    """The paper's identity consistency: mean cosine over all pairs i < j of one person's generated images (across
    prompts), among the rows with a face.

    Args:
        embeddings: (n, d) identity rows of one person's images, NaN where no face was found.

    Returns:
        The mean pairwise cosine, NaN with fewer than 2 faces.
    """
    rows = _rows(embeddings, "embeddings")
    found = _unit(rows[_with_face(rows)])
    if len(found) < 2:
        return math.nan
    upper = np.triu_indices(len(found), k=1)  # each pair once, no image with itself
    return float((found @ found.T)[upper].mean())


def frechet_distance(real_features: Rows, fake_features: Rows) -> float:
    """FID: ``‖μ_r − μ_f‖² + tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½)`` between Gaussians fitted to two feature sets (means and
    unbiased covariances), computed by torchmetrics' ``FrechetInceptionDistance`` in float64.

    Biased on small sets: two samples of one distribution score above 0, by more the fewer the images and the wider
    the features (so ``kernel_distance`` is reported beside it). Here "real" is the plain pipeline's images.

    Args:
        real_features: (n, d) features of the reference set, n ≥ 2.
        fake_features: (m, d) features of the compared set, m ≥ 2.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=True).set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kernel_distance(
    real_features: Rows, fake_features: Rows, subset_size: int, subsets: int = 100, seed: int = 0
) -> tuple[float, float]:
    """KID: the squared maximum mean discrepancy with the kernel ``k(x, y) = (xᵀy / d + 1)³``, estimated without
    bias (the within-set sums leave out each feature with itself), averaged over random subsets; computed by
    torchmetrics' ``KernelInceptionDistance``. Unbiased, unlike FID: on two samples of one distribution its expected
    value is 0, whatever the set size, which is why it is reported for small evaluation sets.

    Args:
        real_features: (n, d) features of the reference set.
        fake_features: (m, d) features of the compared set.
        subset_size: features drawn (without replacement) from each set per subset; at most min(n, m), at least 2.
        subsets: subsets averaged.
        seed: seeds the subset draws (the caller's random state is left as it was).

    Returns:
        (mean, standard deviation) over the subsets.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    from namespace.seeding import seeded

    real, fake = _feature_pair(real_features, fake_features, minimum=2)
    if not 2 <= subset_size <= min(len(real), len(fake)) or subsets < 1:
        raise ValueError(
            f"subset_size, subsets: expected 2 ≤ subset_size ≤ {min(len(real), len(fake))} (the smaller set) and "
            f"subsets ≥ 1, got {subset_size}, {subsets}"
        )
    with warnings.catch_warnings():  # it warns that it keeps every feature: these are a few thousand rows at most
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with seeded(seed):  # its subsets come from torch's global generator
        mean, std = metric.compute()
    return float(mean), float(std)


class _Precomputed(nn.Module):
    """torchmetrics' feature extractor slot for features computed beforehand: (B, d) → (B, d) unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # read by FrechetInceptionDistance instead of probing with an image

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _feature_pair(real_features: Rows, fake_features: Rows, minimum: int) -> tuple[torch.Tensor, torch.Tensor]:
    real = _rows(real_features, "real_features")
    fake = _rows(fake_features, "fake_features")
    problems = [
        f"{name}: expected at least {minimum} rows, got {len(rows)}"
        for name, rows in (("real_features", real), ("fake_features", fake))
        if len(rows) < minimum
    ]
    if real.shape[1] != fake.shape[1]:
        problems.append(f"fake_features: expected width {real.shape[1]} (real_features'), got {fake.shape[1]}")
    problems += [f"{name}: expected finite values, got NaN or inf" for name, rows in
                 (("real_features", real), ("fake_features", fake)) if not np.isfinite(rows).all()]  # fmt: skip
    if problems:
        raise ValueError("\n".join(problems))
    return torch.from_numpy(real), torch.from_numpy(fake)


def _array(values: Rows) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _rows(values: Rows, argument: str) -> np.ndarray:
    """Any (n, d) array or tensor → float64 numpy; at least one row."""
    array = _array(values)
    if array.ndim != 2 or not len(array):
        raise ValueError(f"{argument}: expected (n, d) rows with n ≥ 1, got shape {array.shape}")
    return array


def _with_face(rows: np.ndarray) -> np.ndarray:
    """(n,) bool: rows without NaN (the face stack writes a whole NaN row where it finds no face)."""
    return ~np.isnan(rows).any(axis=1)


def _same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected shape {a.shape} ({name_a}', one row per image), got {b.shape}")


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


__all__ = [
    "attribute_ti",
    "clip_ti",
    "face_detection_rate",
    "frechet_distance",
    "identity_consistency",
    "kernel_distance",
    "reference_embedding",
    "reference_similarity",
]
