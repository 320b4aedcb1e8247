"""Seeded construction without touching the caller's global random state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU generator seeded to ``seed``; the caller's generator state is restored after.

    Only the CPU generator is seeded: ``torch.manual_seed`` would also seed every CUDA (and MPS, XPU) generator,
    whose states nothing here restores. Build modules inside the block on the CPU, then move them.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def reproducible(threads: int) -> Iterator[None]:
    """Runs the block with a fixed number of torch intra-op threads and torch's deterministic algorithms.

    A CPU matmul or sum splits its work by thread, so its float result depends on the thread count: seeded figures
    reproduce only when the count is fixed. The count is also exported (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) to
    the processes the block spawns. Everything is restored after. What it cannot fix: kernels that differ between
    processors (AVX2 against AVX-512) and GPUs' own non-determinism beyond torch's deterministic mode.

    Args:
        threads: torch intra-op threads (at least 1).
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a whole number of at least 1, got {threads!r}")
    previous_threads, previous_mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_environment = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn, not fail, where an op has no deterministic form
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_mode, warn_only=previous_warn)
        for name, value in previous_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
