"""Calibrating the same-person threshold on labelled photos: the cosine that best separates pairs of one person's
faces from pairs of two people's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Attributes:
    threshold: the midpoint of the gap when the pairs separate, else the equal-error cosine.
    same_min: the lowest cosine of a same-person pair.
    different_max: the highest cosine of a different-person pair.
    same_pairs, different_pairs: how many pairs of each kind were compared.
    """

    threshold: float
    same_min: float
    different_max: float
    same_pairs: int
    different_pairs: int

    @property
    def separated(self) -> bool:
        return self.same_min > self.different_max


def calibrate_same_person_threshold(embeddings: np.ndarray, people: list[str]) -> Calibration:
    """(n, d) unit embeddings (NaN rows skipped) and who each is → the threshold separating their pairs."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(people) != embeddings.shape[0]:
        raise ValueError(
            f"people: expected one label per embedding row ({embeddings.shape[0]}), got {len(people)} labels"
        )
    keep = ~np.isnan(embeddings).any(axis=1)
    embeddings, labels = embeddings[keep], np.asarray(people, dtype=object)[keep]
    cosine = embeddings @ embeddings.T
    upper = np.triu_indices(len(labels), k=1)
    same_mask = labels[upper[0]] == labels[upper[1]]
    same, different = cosine[upper][same_mask], cosine[upper][~same_mask]
    if not len(same) or not len(different):
        raise ValueError("people: need at least two photos of one person and photos of two people (with faces)")
    same_min, different_max = float(same.min()), float(different.max())
    if same_min > different_max:
        threshold = (same_min + different_max) / 2
    else:  # overlapping: the cosine where false accepts and false rejects are equally frequent
        candidates = np.unique(np.concatenate([same, different]))
        errors = [abs((same < c).mean() - (different >= c).mean()) for c in candidates]
        threshold = float(candidates[int(np.argmin(errors))])
    return Calibration(threshold, same_min, different_max, len(same), len(different))
