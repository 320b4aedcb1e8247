"""Code that promises to leave the caller's random state alone leaves it alone: on the CPU and on every GPU."""

import pytest
import torch

import namespace as ns
from namespace.seeding import seeded

CUDA_STATE_SETTERS = ("manual_seed", "manual_seed_all", "seed", "seed_all", "set_rng_state", "set_rng_state_all")


@pytest.fixture
def cuda_state_calls(monkeypatch):
    """Names of the calls that set a CUDA generator's state; each still goes through to torch.

    Without a GPU these calls are queued until CUDA starts, so the generators' states cannot be compared: the
    calls are watched instead (``torch.manual_seed`` makes one, ``torch.cuda.manual_seed_all``).
    """
    calls = []

    def watched(name):
        original = getattr(torch.cuda, name)

        def spy(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        return spy

    for name in CUDA_STATE_SETTERS:
        monkeypatch.setattr(torch.cuda, name, watched(name))
    return calls


def spectrum_names(generator):
    names = torch.randn(60, 4, 10, generator=generator, dtype=torch.float64)
    names[:, 0, :3] *= torch.tensor([30.0, 20.0, 12.0], dtype=torch.float64)
    return names


def test_seeded_is_reproducible_and_restores_the_cpu_generator():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with seeded(5):
        first = torch.randn(4)
    after = torch.random.get_rng_state()
    with seeded(5):
        second = torch.randn(4)
    assert torch.equal(first, second)
    assert torch.equal(after, before)


def test_seeded_sets_no_cuda_generator(cuda_state_calls):
    with seeded(5):
        torch.nn.Linear(3, 3)
    assert cuda_state_calls == []


def test_fit_leaves_every_generator_alone(cuda_state_calls, generator):
    before = torch.random.get_rng_state()
    ns.NameSpaceStatistics.fit(spectrum_names(generator), rank=3, exact_svd_limit=0)  # the randomized SVD
    assert torch.equal(torch.random.get_rng_state(), before)
    assert cuda_state_calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_generators_are_left_alone(generator):
    torch.cuda.manual_seed_all(123)
    before = torch.cuda.get_rng_state_all()
    with seeded(5):
        torch.nn.Linear(3, 3)
    ns.NameSpaceStatistics.fit(spectrum_names(generator).cuda(), rank=3, exact_svd_limit=0)
    after = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_reproducible_fixes_the_thread_count_and_restores_it(monkeypatch):
    """A CPU matmul's float result depends on the threads sharing it; inside the block the count is fixed whatever
    the caller had (and exported to spawned processes), and everything is restored after."""
    import os

    from namespace.seeding import reproducible

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    original = torch.get_num_threads()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 3000, generator=generator), torch.randn(3000, 512, generator=generator)
    with reproducible(2):
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
        assert torch.are_deterministic_algorithms_enabled()
        inside_from_one = a @ b
    torch.set_num_threads(2)
    with reproducible(2):
        inside_from_two = a @ b
    torch.set_num_threads(1)
    assert torch.equal(inside_from_one, inside_from_two)
    assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS" not in os.environ
    assert not torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(original)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_reproducible_refuses_a_bad_thread_count(threads):
    from namespace.seeding import reproducible

    with pytest.raises(ValueError, match="threads: expected a whole number of at least 1"), reproducible(threads):
        pass
