"""An identity from a text description alone: a consistent character without fine-tuning.

Generate K candidate images of the description with the pipeline itself, encode each into a name, cluster the names
with faiss k-means, and keep the mean of the most consistent cluster: the look the model most often associates with
the description.

Which cluster is "most consistent" is our choice (the paper does not say). Names are first centred by the mean name
F_mean: raw names share that mean, which dominates their cosines and makes any two people look alike. A cluster then
scores its *agreement*, the sum of the cosines between every ordered pair of its members' centred names,
``n·(n − 1)·ρ`` with ``ρ`` their mean pairwise cosine. Unrelated names score about 0 however many they are
(centred names of different people are nearly orthogonal), a tight pair at most 2, and a large cluster that agrees
scores high. Mean cosine to the centroid alone (cohesion) would pick any tight pair over a large consistent group,
and size × cohesion would let a large group of unrelated names win (its cohesion falls only as 1/√n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from namespace import Identity
from namespace.progress import progress

if TYPE_CHECKING:  # the plugin imports this module lazily; the annotation only names it
    from .plugin import MagicNaming


def identity_from_text(
    naming: MagicNaming,
    description: str,
    num_candidates: int = 16,
    num_clusters: int = 3,
    min_cluster_size: int = 2,
    seed: int = 0,
    batch_size: int = 4,
    label: str | None = None,
    **pipeline_kwargs: Any,
) -> Identity:
    """Makes an identity from ``description``.

    Args:
        naming: the ``MagicNaming`` plugin (its pipeline draws the candidates, its encoder names them).
        description: e.g. "a young woman with curly red hair and freckles".
        num_candidates: K images generated.
        num_clusters: k-means clusters over the K names.
        min_cluster_size: smaller clusters are never chosen (one image is not a consistent look).
        seed: seeds the candidates and k-means.
        batch_size: candidates generated per pipeline call.
        label: the identity's label (default: the description).
        **pipeline_kwargs: passed to the pipeline (num_inference_steps, guidance_scale, height, width, ...).

    Returns:
        The identity, the mean of the chosen cluster's names, with the cluster's size, cohesion (mean pairwise
        cosine of the centred names) and agreement in its metadata.
    """
    _faiss()  # fail before generating anything
    if not description.strip():
        raise ValueError("description: expected a non-empty text")
    if not 1 <= num_clusters <= num_candidates or min_cluster_size > num_candidates:
        raise ValueError(
            f"num_candidates={num_candidates}, num_clusters={num_clusters}, min_cluster_size={min_cluster_size}: "
            "expected 1 <= num_clusters <= num_candidates and min_cluster_size <= num_candidates"
        )
    mean = naming.encoder.statistics.mean.cpu()  # (N, D) F_mean; raises now if the encoder has no statistics
    images = []
    generator = torch.Generator().manual_seed(seed)
    for start in progress(range(0, num_candidates, batch_size), desc="candidates", unit="batch"):
        count = min(batch_size, num_candidates - start)
        output = naming.pipe(
            prompt=description, num_images_per_prompt=count, generator=generator, output_type="pil", **pipeline_kwargs
        )
        images += output.images
    names = naming.encoder.encode(images).cpu()  # (K, N, D)
    cluster = most_consistent_cluster(names, mean, num_clusters, min_cluster_size, seed)
    metadata = {
        "description": description,
        "num_candidates": str(num_candidates),
        "cluster_size": str(cluster.size),
        "cohesion": f"{cluster.cohesion:.4f}",
        "agreement": f"{cluster.agreement:.4f}",
        "seed": str(seed),
    }
    return Identity(names[cluster.members].mean(0), label or description, "text", metadata=metadata)


@dataclass(frozen=True)
class Cluster:
    """A cluster of candidate names.

    Attributes:
        members: (M,) indices of the candidates in the cluster.
        cohesion: mean cosine between its members' centred names, over ordered pairs (0 for a single member).
    """

    members: torch.Tensor
    cohesion: float

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def agreement(self) -> float:
        """The score clusters are chosen by: ``size·(size − 1)·cohesion``, the sum of all pairwise cosines."""
        return self.size * (self.size - 1) * self.cohesion


def most_consistent_cluster(
    names: torch.Tensor, mean: torch.Tensor, num_clusters: int, min_cluster_size: int = 2, seed: int = 0
) -> Cluster:
    """Clusters names by the cosine of their centred form and returns the cluster of highest agreement.

    Args:
        names: (K, N, D) candidate names.
        mean: (N, D) the mean name F_mean they are centred by.
        num_clusters: k-means clusters (at most K).
        min_cluster_size: smaller clusters are never chosen.
        seed: seeds k-means.

    Returns:
        The cluster with the highest agreement among those of at least ``min_cluster_size`` members (see the
        module docstring for why agreement).
    """
    faiss = _faiss()
    centred = (names.float() - mean.float()).flatten(1)  # (K, N·D)
    unit = torch.nn.functional.normalize(centred, dim=1)
    count = unit.shape[0]
    # spherical k-means, best of 10 restarts: one unlucky start must not split the consistent group. K is small
    # (tens) by design; faiss's defaults ask for 39 points per centroid and warn otherwise: one is enough here, and
    # no subsampling either.
    kmeans = faiss.Kmeans(
        unit.shape[1],
        num_clusters,
        niter=25,
        nredo=10,
        seed=seed,
        spherical=True,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max(count, 1),
    )
    kmeans.train(unit.numpy())
    _, assignment = kmeans.index.search(unit.numpy(), 1)
    assignment = torch.from_numpy(assignment[:, 0])
    best = None
    for cluster in range(num_clusters):
        members = (assignment == cluster).nonzero().flatten()
        if len(members) < min_cluster_size:
            continue
        candidate = Cluster(members, _cohesion(unit[members]))
        if best is None or candidate.agreement > best.agreement:
            best = candidate
    if best is None:
        raise RuntimeError(
            f"no cluster of the {count} candidates has {min_cluster_size} or more members: "
            "generate more candidates or ask for fewer clusters"
        )
    return best


def _cohesion(unit: torch.Tensor) -> float:
    """Mean cosine over ordered pairs of (M, F) unit vectors: (‖Σu‖² − M) / (M·(M − 1))."""
    size = unit.shape[0]
    if size < 2:
        return 0.0
    return float((unit.sum(0).square().sum() - size) / (size * (size - 1)))


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "identities from text cluster with faiss: pip install faiss-cpu (or magicnaming[data])"
        ) from error
    return faiss
