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

Rounds (The Chosen One, Avrahami et al. 2024, without its training): round r ≥ 2 draws the K candidates with the
current name prepended to the description (the plugin's own call), names and clusters them again, and keeps the new
cluster's mean; the rounds stop when the agreement stops rising or at the round limit. Rounds are compared by the
same agreement that chose each round's cluster. That is fair because every round draws the same K candidates into
the same number of clusters: the score has the same ceiling K·(K − 1) in every round, and it rises when more of the
K candidates share the look or when they share it more closely, both what converging means. Cohesion alone would
call a round better whose cluster shrank to a tight pair. (Across runs with different K, compare agreement divided by
K·(K − 1) instead; with K fixed it orders the rounds the same way.) One round's fall may be noise: the identity
returned is always the best round's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from namespace import Identity
from namespace.progress import progress

if TYPE_CHECKING:  # the plugin imports this module lazily; the annotation only names it
    from .plugin import MagicNaming


ROUND_SEED_STRIDE = 0x9E3779B97F4A7C15  # odd, about 2**64 / φ: the rounds of nearby seeds draw unrelated noise
ROUND_LIMIT = "round_limit"  # why the rounds stopped: the limit was reached, agreement still rising
NOT_RISING = "agreement_stopped_rising"  # the last round's agreement was not above the one before


def identity_from_text(
    naming: MagicNaming,
    description: str,
    num_candidates: int = 16,
    num_clusters: int = 3,
    min_cluster_size: int = 2,
    seed: int = 0,
    batch_size: int = 4,
    label: str | None = None,
    rounds: int = 1,
    **pipeline_kwargs: Any,
) -> Identity:
    """Makes an identity from ``description``.

    Args:
        naming: the ``MagicNaming`` plugin (its pipeline draws the candidates, its encoder names them).
        description: e.g. "a young woman with curly red hair and freckles".
        num_candidates: K images generated (per round).
        num_clusters: k-means clusters over the K names.
        min_cluster_size: smaller clusters are never chosen (one image is not a consistent look).
        seed: seeds the candidates (round r: ``round_seed(seed, r)``; round 1: ``seed``) and k-means (every round).
        batch_size: candidates generated per pipeline call.
        label: the identity's label (default: the description).
        rounds: the round limit. 1: candidates of the description alone. From round 2 on, the candidates are drawn
            with the current name prepended to the description; the rounds stop early when the agreement does not
            rise (see the module docstring).
        **pipeline_kwargs: passed to the pipeline (num_inference_steps, guidance_scale, height, width, ...).

    Returns:
        The identity, the mean of the chosen cluster's names, with the cluster's size, cohesion (mean pairwise
        cosine of the centred names) and agreement in its metadata. With ``rounds`` > 1 it is the best round's
        (highest agreement: the one before the last when the last round's agreement fell), and the metadata also
        holds ``rounds``, ``rounds_run``, ``best_round``, ``stopped`` (``round_limit`` or
        ``agreement_stopped_rising``) and each round's ``round_agreements``, ``round_cluster_sizes`` and
        ``round_cohesions`` (comma-separated, round 1 first). With ``rounds=1`` the identity and its metadata are
        exactly those of a call without rounds.
    """
    made = text_identity_rounds(
        naming, description, num_candidates, num_clusters, min_cluster_size, seed, batch_size, label, rounds,
        **pipeline_kwargs,
    )  # fmt: skip
    return made.identity()


@dataclass(frozen=True)
class TextRound:
    """One round of ``identity_from_text``: its identity (the chosen cluster's mean) and that cluster."""

    identity: Identity
    cluster: Cluster


@dataclass(frozen=True)
class TextRounds:
    """Every round run by ``text_identity_rounds``, round 1 first.

    Attributes:
        rounds: each round's identity and cluster.
        limit: the round limit asked for.
        stopped: ``ROUND_LIMIT`` or ``NOT_RISING``.
    """

    rounds: list[TextRound]
    limit: int
    stopped: str

    @property
    def best(self) -> int:
        """Index of the round of highest agreement (the earliest on a tie)."""
        agreements = [r.cluster.agreement for r in self.rounds]
        return agreements.index(max(agreements))

    def identity(self) -> Identity:
        """The best round's identity; beyond one round, its metadata records every round."""
        chosen = self.rounds[self.best].identity
        if self.limit == 1:
            return chosen
        clusters = [r.cluster for r in self.rounds]
        metadata = dict(chosen.metadata) | {
            "rounds": str(self.limit),
            "rounds_run": str(len(self.rounds)),
            "best_round": str(self.best + 1),
            "stopped": self.stopped,
            "round_agreements": ",".join(f"{c.agreement:.4f}" for c in clusters),
            "round_cluster_sizes": ",".join(str(c.size) for c in clusters),
            "round_cohesions": ",".join(f"{c.cohesion:.4f}" for c in clusters),
        }
        return Identity(chosen.embedding, chosen.label, chosen.source, metadata=metadata)


def text_identity_rounds(
    naming: MagicNaming,
    description: str,
    num_candidates: int = 16,
    num_clusters: int = 3,
    min_cluster_size: int = 2,
    seed: int = 0,
    batch_size: int = 4,
    label: str | None = None,
    rounds: int = 1,
    **pipeline_kwargs: Any,
) -> TextRounds:
    """The rounds of :func:`identity_from_text` (same arguments), each with its identity: round 1's is the identity
    a single round makes; ``.identity()`` is what ``identity_from_text`` returns."""
    _faiss()  # fail before generating anything
    if not description.strip():
        raise ValueError("description: expected a non-empty text")
    if not 1 <= num_clusters <= num_candidates or min_cluster_size > num_candidates:
        raise ValueError(
            f"num_candidates={num_candidates}, num_clusters={num_clusters}, min_cluster_size={min_cluster_size}: "
            "expected 1 <= num_clusters <= num_candidates and min_cluster_size <= num_candidates"
        )
    check_rounds(rounds)
    mean = naming.encoder.statistics.mean.cpu()  # (N, D) F_mean; raises now if the encoder has no statistics
    made: list[TextRound] = []
    stopped = ROUND_LIMIT
    for index in range(1, rounds + 1):
        current = made[-1].identity if made else None
        images = _candidates(naming, description, current, num_candidates, round_seed(seed, index), batch_size,
                             index, pipeline_kwargs)  # fmt: skip
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
        identity = Identity(names[cluster.members].mean(0), label or description, "text", metadata=metadata)
        made.append(TextRound(identity, cluster))
        if index > 1 and not cluster.agreement > made[-2].cluster.agreement:
            stopped = NOT_RISING
            break
    return TextRounds(made, rounds, stopped)


def _candidates(naming, description, current, count, seed, batch_size, index, pipeline_kwargs) -> list:
    """The K candidate images of one round: the pipeline's own for round 1, the plugin's with ``current``'s name
    prepended after it."""
    images = []
    generator = torch.Generator().manual_seed(seed)
    desc = "candidates" if current is None else f"candidates, round {index}"
    for start in progress(range(0, count, batch_size), desc=desc, unit="batch"):
        size = min(batch_size, count - start)
        options = {"num_images_per_prompt": size, "generator": generator, "output_type": "pil", **pipeline_kwargs}
        if current is None:
            output = naming.pipe(prompt=description, **options)
        else:
            output = naming(description, current, **options)
        images += output.images
    return images


def round_seed(seed: int, round_index: int) -> int:
    """The seed of round ``round_index``'s candidates: ``seed`` itself for round 1, then steps of
    ``ROUND_SEED_STRIDE`` modulo 2**64 (torch's generator range), so every round is reproducible from the seed."""
    return (seed + (round_index - 1) * ROUND_SEED_STRIDE) % 2**64


def check_rounds(rounds: object, argument: str = "rounds") -> int:
    """``rounds`` if it is an integer of at least 1; else ValueError naming ``argument``."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"{argument}: expected an integer of at least 1 (1: no refining rounds), got {rounds!r}")
    return rounds


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
