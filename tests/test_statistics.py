"""Name-space statistics: mean, mean norm, PCA, and sampling new identities."""

import pytest
import torch

import namespace as ns


def low_rank_names(generator, count=200, rank=3, num_tokens=4, width=6):
    basis = torch.linalg.qr(torch.randn(num_tokens * width, rank, generator=generator))[0].T  # (rank, N·D)
    scales = torch.tensor([5.0, 2.0, 0.5])[:rank]
    offset = torch.randn(num_tokens * width, generator=generator) * 3
    coefficients = torch.randn(count, rank, generator=generator) * scales
    return (offset + coefficients @ basis).view(count, num_tokens, width).double(), basis.double(), scales


def test_fit_recovers_mean_norm_and_principal_directions(generator):
    names, basis, _ = low_rank_names(generator)
    stats = ns.NameSpaceStatistics.fit(names, rank=5)
    torch.testing.assert_close(stats.mean, names.mean(0))
    assert stats.norm == pytest.approx(names.flatten(1).norm(dim=1).mean().item())
    assert stats.count == 200 and stats.components.shape == (5, 24)
    # the first three components span the generating basis; the rest carry no variance
    projection = stats.components[:3] @ basis.T  # (3, 3), orthogonal when the spans agree
    torch.testing.assert_close(
        torch.linalg.det(projection).abs(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0
    )
    assert torch.all(stats.variances[3:] < 1e-10)
    expected = names.flatten(1).var(dim=0, unbiased=True).sum()
    torch.testing.assert_close(stats.variances.sum(), expected)


def test_samples_lie_in_the_subspace_with_the_stored_norm(generator):
    names, _, _ = low_rank_names(generator)
    stats = ns.NameSpaceStatistics.fit(names, rank=3)
    samples = stats.sample(500, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (500, 4, 6)
    torch.testing.assert_close(samples.flatten(1).norm(dim=1), torch.full((500,), stats.norm, dtype=torch.float64))
    # before scaling, a sample is mean + a combination of the components: check the direction only
    offsets = samples.flatten(1) / samples.flatten(1).norm(dim=1, keepdim=True)
    span = torch.cat([stats.mean.flatten()[None], stats.components])  # (4, 24)
    residual = offsets - (offsets @ torch.linalg.pinv(span)) @ span
    assert residual.abs().max() < 1e-8


def test_sampling_is_reproducible_and_temperature_zero_gives_the_mean(generator):
    stats = ns.NameSpaceStatistics.fit(low_rank_names(generator)[0], rank=3)
    first = stats.sample(2, generator=torch.Generator().manual_seed(7))
    second = stats.sample(2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    at_mean = stats.sample(1, temperature=0.0)[0]
    torch.testing.assert_close(at_mean, ns.normalize(stats.mean, stats.norm))


def test_rank_is_capped_by_the_number_of_names(generator):
    stats = ns.NameSpaceStatistics.fit(torch.randn(4, 2, 3, generator=generator), rank=64)
    assert stats.components.shape == (3, 6)


def spectrum_names(generator, count=120, num_tokens=4, width=10):
    """Names with a decaying spectrum: a few strong directions over isotropic noise."""
    names = torch.randn(count, num_tokens, width, generator=generator, dtype=torch.float64)
    names[:, 0, :4] *= torch.tensor([30.0, 20.0, 12.0, 8.0], dtype=torch.float64)
    return names


def test_randomized_svd_matches_exact_svd(generator):
    names = spectrum_names(generator)  # min(M, N·D) = 40: exact by default
    exact = ns.NameSpaceStatistics.fit(names, rank=4)
    randomized = ns.NameSpaceStatistics.fit(names, rank=4, exact_svd_limit=0)
    reference = torch.linalg.svd(names.flatten(1) - names.flatten(1).mean(0), full_matrices=False)
    torch.testing.assert_close(exact.variances, reference.S[:4] ** 2 / 119, rtol=1e-12, atol=0)
    torch.testing.assert_close(randomized.variances, exact.variances, rtol=1e-8, atol=0)
    # the same subspace: the cosines of the principal angles between the two spans are all 1
    cosines = torch.linalg.svdvals(randomized.components @ exact.components.T)
    torch.testing.assert_close(cosines, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-8)
    assert not torch.equal(randomized.components.abs(), exact.components.abs())  # two computations, not one


def test_randomized_fit_is_reproducible_whatever_the_global_seed(generator):
    names = spectrum_names(generator)
    torch.manual_seed(1)
    first = ns.NameSpaceStatistics.fit(names, rank=4, exact_svd_limit=0)
    torch.manual_seed(2)
    second = ns.NameSpaceStatistics.fit(names, rank=4, exact_svd_limit=0)
    torch.testing.assert_close(first.components, second.components, rtol=0, atol=0)
    torch.testing.assert_close(first.variances, second.variances, rtol=0, atol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 names"):
        ns.NameSpaceStatistics.fit(torch.randn(1, 8, 4))
    with pytest.raises(ValueError, match="expected finite values"):
        ns.NameSpaceStatistics.fit(torch.full((3, 8, 4), float("nan")))
    with pytest.raises(ValueError, match="exact_svd_limit: expected a non-negative size, got -1"):
        ns.NameSpaceStatistics.fit(torch.randn(3, 2, 2), exact_svd_limit=-1)
    stats = ns.NameSpaceStatistics.fit(torch.randn(3, 2, 2), rank=0)
    with pytest.raises(ValueError, match="rank 0"):
        stats.sample()
