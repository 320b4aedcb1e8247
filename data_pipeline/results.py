"""Reading a finished build's stage results that are not LaionCele files: what the probe measured per name.

A build keeps each stage's output under ``OUTPUT/work/<stage>/`` (``keep_work``, on by default); these readers are
the one place outside the stages that knows those paths, so a caller (the demo) never names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROBE_TABLE = Path("work/probe/probe.parquet")  # under the build's output folder


@dataclass(frozen=True)
class ProbedName:
    """One probed name: its images' consistency (mean pairwise cosine of the embedder) and whether it passed."""

    identity_id: int
    name: str
    consistency: float
    passed: bool


def probe_results(laioncele: Path) -> list[ProbedName]:
    """Every name the probe drew, kept or not, in probe order.

    Args:
        laioncele: a finished build's output folder, built with ``keep_work`` (the default).
    """
    import pyarrow.parquet as pq

    path = Path(laioncele) / PROBE_TABLE
    if not path.is_file():
        raise FileNotFoundError(f"no probe results at {path}: build with keep_work true (the default) to keep them")
    columns = ["identity_id", "name", "consistency", "passed"]
    return [ProbedName(**row) for row in pq.read_table(path, columns=columns).to_pylist()]


__all__ = ["PROBE_TABLE", "ProbedName", "probe_results"]
