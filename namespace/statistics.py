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
    """

    mean: torch.Tensor
    norm: float
    components: torch.Tensor
    variances: torch.Tensor
    count: int

    @classmethod
    def fit(cls, names: torch.Tensor, rank: int = 64) -> NameSpaceStatistics:
        """Fits the statistics to (M, N, D) names; ``rank`` is capped at M − 1 (the rank of M centred names)."""
        names = check_name_tensor(names, "names")
        if names.ndim != 3 or names.shape[0] < 2:
            raise ValueError(f"names: expected (M, N, D) with at least 2 names, got shape {tuple(names.shape)}")
        check_finite(names, "names")
        if rank < 0:
            raise ValueError(f"rank: expected a non-negative number of components, got {rank}")
        count = names.shape[0]
        flat = names.detach().double().flatten(1)  # (M, N·D)
        mean = flat.mean(0)
        norm = float(torch.linalg.vector_norm(flat, dim=1).mean())
        rank = min(rank, count - 1, flat.shape[1])
        components, singular = _principal_directions(flat - mean, rank)  # (K, N·D), (K,)
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


def _principal_directions(centred: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``rank`` right singular vectors (K, N·D) and singular values (K,) of (M, N·D) centred names.

    Exact SVD while the smaller side is small; at LaionCele size (42k × 16384) a randomized SVD keeps memory at
    O(M·K) instead of materialising an (M, N·D) left factor.
    """
    if rank == 0:
        return centred.new_zeros(0, centred.shape[1]), centred.new_zeros(0)
    if min(centred.shape) <= 4096:
        _, singular, right = torch.linalg.svd(centred, full_matrices=False)
        return right[:rank], singular[:rank]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # the randomized SVD draws a random projection: keep fitting reproducible
    _, singular, right = torch.svd_lowrank(centred, q=min(rank + 16, min(centred.shape)), niter=6)
    torch.random.set_rng_state(generator_state)
    return right.T[:rank], singular[:rank]
