"""Seeded construction without touching the caller's global random state."""

from __future__ import annotations

import contextlib
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
