"""Peak memory of one training rank on the cached-feature path, at two sizes of the feature cache.

Each size gets a synthetic LaionCele-like directory (random fp16 features as wide as ViT-L/14 + ViT-bigG/14, 768 +
1280, written through ``FeatureCacheWriter``; the same identities at every size, so only the cache grows) and a
fresh process that trains the tiny encoder head on it on the CPU (``--steps`` steps, then one validation of
``--val_batches`` batches per split) while a thread samples its memory.

Two figures per size: private memory (``RssAnon`` of ``/proc/self/status``: the rank's own heap, what every rank of
a node pays separately) is the one that must stay flat as the cache grows; resident memory (``VmRSS``) adds the
file-backed pages of the memory-mapped cache, which the OS page cache shares between the ranks of a node.

    python benchmarks/training_cache_memory.py                          # 20k and 160k photos, about a minute
    python benchmarks/training_cache_memory.py --sizes 20000 160000 --json cache_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from flags import ArgumentParser

from namespace import NameSpaceStatistics
from namespace.laioncele import (
    FORMAT,
    FORMAT_VERSION,
    FeatureCacheWriter,
    write_feature_keys,
    write_identities,
    write_manifest,
    write_name_embeddings,
)

DIMS = (768, 1280)  # ViT-L/14 and ViT-bigG/14 image embeddings
NUM_TOKENS, WIDTH = 8, 80  # the tiny head's names
IDENTITIES = 1000
CHUNK = 16384  # rows written at a time


def write_synthetic_laioncele(folder: Path, photos: int, identities: int = IDENTITIES, seed: int = 0) -> None:
    """A LaionCele directory with a feature cache of ``photos`` random rows (no shards: the cached path reads none).

    Holds one chunk of features and the keys table (tens of bytes per photo) in memory.
    """
    rng = np.random.default_rng(seed)
    features = folder / "features"
    with FeatureCacheWriter(features, photos, list(DIMS)) as writer:
        for start in range(0, photos, CHUNK):
            count = min(CHUNK, photos - start)
            writer.write(
                start, [rng.standard_normal((count, dim), dtype=np.float32).astype(np.float16) for dim in DIMS]
            )
    identity_of = np.arange(photos) % identities
    split = np.where(
        identity_of >= identities * 9 // 10, "val", np.where(np.arange(photos) < identities, "heldout", "train")
    )
    write_feature_keys(
        features,
        pa.table(
            {
                "key": [f"{row:09d}" for row in range(photos)],
                "identity_id": pa.array(identity_of, pa.int32()),
                "split": pa.array(split),
                "shard": pa.array(["train-000000.tar"] * photos),
            }
        ),
    )
    names = torch.from_numpy(rng.standard_normal((identities, NUM_TOKENS, WIDTH), dtype=np.float32) * 0.1)
    train_identities = identities * 9 // 10
    statistics = NameSpaceStatistics.fit(names[:train_identities], rank=8)
    write_name_embeddings(
        folder,
        {
            "name_embeddings": names,
            "name_mean": statistics.mean,
            "name_norm": torch.tensor(statistics.norm),
            "pca_components": statistics.components,
            "pca_variances": statistics.variances,
        },
        {"statistics_from": "train identities"},
    )
    write_identities(
        folder,
        pa.table(
            {
                "identity_id": pa.array(range(identities), pa.int32()),
                "name": [f"person {i}" for i in range(identities)],
                "num_images": pa.array(np.bincount(identity_of, minlength=identities), pa.int32()),
                "split": ["train" if i < train_identities else "val" for i in range(identities)],
                "row": pa.array(range(identities), pa.int32()),
            }
        ),
    )
    write_manifest(folder, {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": {"train": [], "val": []}})


def memory_mb() -> dict[str, float]:
    """This process's private (``RssAnon``) and resident (``VmRSS``) memory, MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return {"private": fields["RssAnon"], "rss": fields["VmRSS"]}


class PeakMemory:
    """Samples ``memory_mb`` every ``interval`` seconds in a thread; keeps the peaks."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak = interval, memory_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        now = memory_mb()
        self.peak = {key: max(self.peak[key], now[key]) for key in now}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def train_and_measure(folder: Path, steps: int, batch: int, val_batches: int) -> dict:
    """Trains the tiny head from ``folder``'s cache in this process; returns its peak memory and the timing."""
    import lightning as L

    from namespace import NameEncoderConfig, TowerConfig
    from namespace.train.cached_data import CachedFeatureDataModule
    from namespace.train.module import NameEncoderModule

    torch.set_num_threads(1)
    towers = [TowerConfig("ViT-L-14", None, DIMS[0]), TowerConfig("ViT-bigG-14", None, DIMS[1])]
    config = NameEncoderConfig(towers=towers, num_tokens=NUM_TOKENS, width=WIDTH, hidden_dims=(64, 64), pca_rank=8)
    start = time.perf_counter()
    with PeakMemory() as peak:
        baseline = memory_mb()
        settings = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
                    "enable_progress_bar": False, "enable_model_summary": False}  # fmt: skip
        module = NameEncoderModule(config, warmup_steps=10)
        data = CachedFeatureDataModule(str(folder), batch_size=batch)
        # the same number of steps at every size (several epochs of the smaller cache), then one validation
        trainer = L.Trainer(max_steps=steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0, **settings)
        trainer.fit(module, data)
        L.Trainer(limit_val_batches=val_batches, **settings).validate(module, data, verbose=False)
    return {
        "steps": trainer.global_step,
        "seconds": time.perf_counter() - start,
        "baseline_private_mb": baseline["private"],
        "peak_private_mb": peak.peak["private"],
        "peak_rss_mb": peak.peak["rss"],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 160_000], help="photos in the cache")
    parser.add_argument("--steps", type=int, default=300, help="training steps per size")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--val_batches", type=int, default=20, help="validation batches per split")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: measure in this process
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.child is not None:
        print(json.dumps(train_and_measure(args.child, args.steps, args.batch, args.val_batches)))
        return
    results = []
    with tempfile.TemporaryDirectory() as temporary:
        for photos in args.sizes:
            folder = Path(temporary) / f"laioncele-{photos}"
            write_synthetic_laioncele(folder, photos)
            cache_mb = sum(path.stat().st_size for path in (folder / "features").glob("tower_*.npy")) / 2**20
            command = [sys.executable, __file__, "--child", str(folder), "--steps", str(args.steps)]
            command += ["--batch", str(args.batch), "--val_batches", str(args.val_batches)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise SystemExit(f"the training process for {photos} photos failed:\n{child.stderr[-3000:]}")
            result = {"photos": photos, "cache_mb": cache_mb, **json.loads(child.stdout.strip().splitlines()[-1])}
            results.append(result)
            print(
                f"{photos:>8} photos, cache {cache_mb:7.1f} MB: peak private {result['peak_private_mb']:7.1f} MB, "
                f"peak RSS {result['peak_rss_mb']:7.1f} MB ({result['steps']} steps, {result['seconds']:.1f} s)"
            )
            for path in (folder / "features").glob("tower_*.npy"):
                path.unlink()  # free the disk before the next size
    smallest, largest = results[0], results[-1]
    summary = {
        "sizes": [r["photos"] for r in results],
        "cache_mb": [r["cache_mb"] for r in results],
        "peak_private_mb": [r["peak_private_mb"] for r in results],
        "peak_rss_mb": [r["peak_rss_mb"] for r in results],
        "private_ratio": largest["peak_private_mb"] / smallest["peak_private_mb"],
        "rss_ratio": largest["peak_rss_mb"] / smallest["peak_rss_mb"],
        "cache_ratio": largest["cache_mb"] / smallest["cache_mb"],
        "steps": args.steps,
        "batch": args.batch,
        "runs": results,
    }
    print(f"largest / smallest: cache × {summary['cache_ratio']:.1f}, peak private × {summary['private_ratio']:.2f}, "
          f"peak RSS × {summary['rss_ratio']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
