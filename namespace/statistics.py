"""Statistics of the name space: the mean name (F_mean, eq. 4), the mean norm (the default η, eq. 5) and a low-rank
Gaussian (PCA) of the training names, from which new, fictional identities are sampled."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_finite, check_name_tensor
from .name_space import normalize


@dataclass(frozen=True)
class NameSpaceStatistics:
    """Mean, mean norm and principal directions of a set of name embeddings.

    Attributes:
        mean: (N, D) mean name, ``F_mean``.
        norm: mean Frobenius norm of the names, the default η.
        components: (K, N·D) orthonormal principal directions, largest variance first.
        variances: (K,) variance of the names along each direction.
        count: number of names the statistics were fitted on.
        delta: the default name guidance δ (eq. 4) of the encoder that keeps these statistics: how far its
            predictions must be pushed from ``mean`` to spread like true names. An MSE-trained encoder shrinks its
            predictions towards the mean; training calibrates δ on held-out photos (``NameEncoderModule``). 1.0
            (eq. 4 off) for statistics fitted on names alone.
    """

    mean: torch.Tensor
    norm: float
    components: torch.Tensor
    variances: torch.Tensor
    count: int
    delta: float = 1.0

    @classmethod
    def fit(cls, names: torch.Tensor, rank: int = 64, exact_svd_limit: int = 4096) -> NameSpaceStatistics:
        """Fits the statistics to (M, N, D) names; ``rank`` is capped at M − 1 (the rank of M centred names).

        The principal directions come from an exact SVD while min(M, N·D) ≤ ``exact_svd_limit``, else from a
        randomized SVD with a fixed seed (memory O(M·K) instead of an (M, N·D) left factor; at LaionCele size,
        42k × 16384, that is the difference). Both are reproducible and leave the global random state alone.
        """
        names = check_name_tensor(names, "names")
        if names.ndim != 3 or names.shape[0] < 2:
            raise ValueError(f"names: expected (M, N, D) with at least 2 names, got shape {tuple(names.shape)}")
        check_finite(names, "names")
        if rank < 0:
            raise ValueError(f"rank: expected a non-negative number of components, got {rank}")
        if exact_svd_limit < 0:
            raise ValueError(f"exact_svd_limit: expected a non-negative size, got {exact_svd_limit}")
        count = names.shape[0]
        flat = names.detach().double().flatten(1)  # (M, N·D)
        mean = flat.mean(0)
        norm = float(torch.linalg.vector_norm(flat, dim=1).mean())
        rank = min(rank, count - 1, flat.shape[1])
        components, singular = _principal_directions(flat - mean, rank, exact_svd_limit)  # (K, N·D), (K,)
        variances = singular**2 / (count - 1)
        dtype = names.dtype
        return cls(mean.view(names.shape[1:]).to(dtype), norm, components.to(dtype), variances.to(dtype), count)

    @property
    def num_tokens(self) -> int:
        return self.mean.shape[0]

    @property
    def width(self) -> int:
        return self.mean.shape[1]

    def sample(
        self, num: int = 1, generator: torch.Generator | None = None, temperature: float = 1.0, eta: float | None = None
    ) -> torch.Tensor:
        """Samples new names from the low-rank Gaussian, scaled to norm η (eq. 5).

        Args:
            num: number of names.
            generator: torch generator for reproducible samples.
            temperature: scales the standard deviation; below 1 stays closer to the mean name.
            eta: norm of each sample; defaults to the mean norm of the training names.

        Returns:
            (num, N, D) names.
        """
        if num < 1:
            raise ValueError(f"num: expected at least 1 sample, got {num}")
        if temperature < 0:
            raise ValueError(f"temperature: expected a non-negative number, got {temperature}")
        if self.components.shape[0] == 0:
            raise ValueError("these statistics hold no principal components (rank 0): cannot sample new names")
        noise = torch.randn(num, self.variances.shape[0], generator=generator, dtype=torch.float64)
        noise = noise.to(self.variances.device)
        coefficients = noise * (temperature * self.variances.double().sqrt())  # (num, K)
        offsets = coefficients @ self.components.double()  # (num, N·D)
        names = self.mean.double().flatten() + offsets
        names = names.view(num, self.num_tokens, self.width).to(self.mean.dtype)
        return normalize(names, self.norm if eta is None else eta)


def _principal_directions(
    centred: torch.Tensor, rank: int, exact_svd_limit: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``rank`` right singular vectors (K, N·D) and singular values (K,) of (M, N·D) centred names.

    Exact SVD while the smaller side is at most ``exact_svd_limit``; a seeded randomized SVD above it.
    """
    if rank == 0:
        return centred.new_zeros(0, centred.shape[1]), centred.new_zeros(0)
    if min(centred.shape) <= exact_svd_limit:
        _, singular, right = torch.linalg.svd(centred, full_matrices=False)
        return right[:rank], singular[:rank]
    return _randomized_svd(centred, rank)


def _randomized_svd(
    matrix: torch.Tensor, rank: int, oversampling: int = 16, power_iterations: int = 6, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``rank`` right singular vectors (K, P) and singular values (K,) of an (M, P) matrix, approximately.

    Halko, Martinsson & Tropp (2011), algorithms 4.4 and 5.1, as ``torch.svd_lowrank``; but the random projection
    comes from a local, seeded generator: ``torch.svd_lowrank`` draws from the global one, and seeding that for
    reproducibility would reseed the caller's generators (``torch.manual_seed`` reseeds every CUDA device too).
    """
    width = min(rank + oversampling, min(matrix.shape))
    generator = torch.Generator().manual_seed(seed)
    # drawn on the CPU: the same projection whatever the device
    projection = torch.randn(matrix.shape[1], width, generator=generator, dtype=matrix.dtype).to(matrix.device)
    basis = torch.linalg.qr(matrix @ projection).Q  # (M, q): an orthonormal basis of the sampled range
    for _ in range(power_iterations):  # subspace iteration: the basis turns toward the top singular vectors
        basis = torch.linalg.qr(matrix.T @ basis).Q  # (P, q)
        basis = torch.linalg.qr(matrix @ basis).Q  # (M, q)
    _, singular, right = torch.linalg.svd(basis.T @ matrix, full_matrices=False)  # (q,), (q, P)
    return right[:rank], singular[:rank]
