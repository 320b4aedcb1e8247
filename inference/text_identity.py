"""An identity from a text description alone: a consistent character without fine-tuning.

Generate K candidate images of the description with the pipeline itself, encode each into a name, cluster the names
with faiss k-means, and keep the mean of the most cohesive cluster: the look the model most consistently associates
with the description.
"""

from __future__ import annotations

import torch

from namespace import Identity
from namespace.progress import progress


def identity_from_text(
    naming,
    description: str,
    num_candidates: int = 16,
    num_clusters: int = 3,
    min_cluster_size: int = 2,
    seed: int = 0,
    batch_size: int = 4,
    label: str | None = None,
    **pipeline_kwargs,
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
        The identity, with the cluster's size and cohesion (mean cosine to its centroid) in its metadata.
    """
    _faiss()  # fail before generating anything
    if not description.strip():
        raise ValueError("description: expected a non-empty text")
    if not 1 <= num_clusters <= num_candidates or min_cluster_size > num_candidates:
        raise ValueError(
            f"num_candidates={num_candidates}, num_clusters={num_clusters}, min_cluster_size={min_cluster_size}: "
            "expected 1 <= num_clusters <= num_candidates and min_cluster_size <= num_candidates"
        )
    images = []
    generator = torch.Generator().manual_seed(seed)
    for start in progress(range(0, num_candidates, batch_size), desc="candidates", unit="batch"):
        count = min(batch_size, num_candidates - start)
        output = naming.pipe(
            prompt=description, num_images_per_prompt=count, generator=generator, output_type="pil", **pipeline_kwargs
        )
        images += output.images
    names = naming.encoder.encode(images).cpu()  # (K, N, D)
    best, cohesion = most_cohesive_cluster(names, num_clusters, min_cluster_size, seed)
    metadata = {
        "description": description,
        "num_candidates": str(num_candidates),
        "cluster_size": str(len(best)),
        "cohesion": f"{cohesion:.4f}",
        "seed": str(seed),
    }
    return Identity(names[best].mean(0), label or description, "text", metadata=metadata)


def most_cohesive_cluster(
    names: torch.Tensor, num_clusters: int, min_cluster_size: int = 2, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Clusters (K, N, D) names by cosine with faiss k-means; returns the indices of the cluster whose members are
    closest to their centroid (mean cosine, the cohesion) among clusters of at least ``min_cluster_size``."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "identity_from_text clusters with faiss: pip install faiss-cpu (or magicnaming[data])"
        ) from error
    unit = torch.nn.functional.normalize(names.flatten(1).float(), dim=1)  # (K, N·D), cosine geometry
    # spherical k-means, best of 10 restarts: one unlucky start must not split the consistent group
    kmeans = faiss.Kmeans(unit.shape[1], num_clusters, niter=25, nredo=10, seed=seed, spherical=True, verbose=False)
    kmeans.train(unit.numpy())
    _, assignment = kmeans.index.search(unit.numpy(), 1)
    assignment = torch.from_numpy(assignment[:, 0])
    best, best_cohesion = None, -2.0
    for cluster in range(num_clusters):
        members = (assignment == cluster).nonzero().flatten()
        if len(members) < min_cluster_size:
            continue
        centroid = torch.nn.functional.normalize(unit[members].mean(0), dim=0)
        cohesion = float((unit[members] @ centroid).mean())
        if cohesion > best_cohesion:
            best, best_cohesion = members, cohesion
    if best is None:
        raise RuntimeError(
            f"no cluster of the {len(names)} candidates has {min_cluster_size} or more members: "
            "generate more candidates or ask for fewer clusters"
        )
    return best, best_cohesion


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "identities from text cluster with faiss: pip install faiss-cpu (or magicnaming[data])"
        ) from error
    return faiss
