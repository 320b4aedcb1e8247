"""Training throughput (photos/s): the feature cache vs streaming images, side by side in one run.

Both DataModules feed the same NameEncoderModule through a Lightning Trainer for the same number of steps, on one
synthetic LaionCele directory (synthetic faces in webdataset shards; its feature cache made by the same towers).
The cache path runs the head only; the streaming path decodes, crops and flips every photo and runs both frozen
towers on it, so the ratio grows with the towers' size.

    python benchmarks/training_throughput.py                                       # tiny towers, CPU
    python benchmarks/training_throughput.py --size full --batch 4 --cached_batch 256 --steps 3 --warmup 1 \\
        --workers 1 --random_cache_features true                       # full size on a CPU (towers: ~10 s a photo)
    python benchmarks/training_throughput.py --size full --accelerator gpu --dtype bf16-mixed --batch 256 \\
        --workers 8                                                   # ViT-L/14 + ViT-bigG/14 with random weights
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import lightning as L
import pyarrow as pa
import torch
from flags import ArgumentParser

from namespace import NameEncoder, NameEncoderConfig, NameSpaceStatistics
from namespace.data_pipeline.shards import ShardWriter
from namespace.laioncele import (
    FEATURES,
    FORMAT,
    FORMAT_VERSION,
    FeatureCacheWriter,
    shard_sample_metadata,
    write_feature_keys,
    write_identities,
    write_manifest,
    write_name_embeddings,
)
from namespace.testing import synthetic_face, tiny_name_encoder_config
from namespace.train.cached_data import CachedFeatureDataModule
from namespace.train.module import NameEncoderModule
from namespace.train.streaming_data import StreamingImageDataModule


def synthetic_laioncele(
    folder: Path, config: NameEncoderConfig, photos: int, identities: int, device: str, random_features: bool
) -> None:
    """A LaionCele directory in the trainer's format: train shards of synthetic faces, random name targets, and the
    feature cache computed by the config's towers (or random, when the towers are too slow for the device: the
    cache's values do not change its speed)."""
    keys, identity_ids, images = [], [], []
    with ShardWriter(folder, "train", 256) as writer:
        for index in range(photos):
            identity = index % identities
            image = synthetic_face(identity, variant=index // identities, size=256)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            key = f"{index:08d}"
            writer.write(
                key, buffer.getvalue(), shard_sample_metadata(key, identity, f"person {identity}", "", "", "train")
            )
            keys.append(key), identity_ids.append(identity), images.append(image)
        shards = [path.name for path in writer.paths]
    if random_features:
        features = torch.randn(photos, config.feature_dim)
    else:
        encoder = NameEncoder(config).to(device)
        features = torch.cat([encoder.image_features(images[i : i + 64]).cpu() for i in range(0, photos, 64)])
    dims = [tower.embed_dim for tower in config.towers]
    with FeatureCacheWriter(folder / FEATURES, photos, dims) as cache:
        cache.write(0, [part.half().numpy() for part in features.split(dims, dim=1)])
    shard_of = [shards[i // 256] for i in range(photos)]
    keys = pa.table({"key": keys, "identity_id": identity_ids, "split": ["train"] * photos, "shard": shard_of})
    write_feature_keys(folder / FEATURES, keys)
    names = torch.randn(identities, config.num_tokens, config.width) * 0.1
    statistics = NameSpaceStatistics.fit(names, rank=min(config.pca_rank, identities - 1))
    tensors = {"name_embeddings": names, "name_mean": statistics.mean, "name_norm": torch.tensor(statistics.norm),
               "pca_components": statistics.components, "pca_variances": statistics.variances}  # fmt: skip
    write_name_embeddings(folder, tensors, {"statistics_from": "train identities"})
    identities_table = pa.table(
        {
            "identity_id": list(range(identities)),
            "name": [f"person {i}" for i in range(identities)],
            "num_images": [photos // identities] * identities,
            "split": ["train"] * identities,
            "row": list(range(identities)),
        }
    )
    write_identities(folder, identities_table)
    write_manifest(folder, {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": {"train": shards, "val": []}})


class StepTimer(L.Callback):
    """Wall time of the steps after ``warmup`` (synchronising the GPU at both ends); stops the run once the timed
    steps pass ``budget_s`` seconds (after at least 2 of them)."""

    def __init__(self, warmup: int, budget_s: float | None = None) -> None:
        self.warmup, self.budget_s = warmup, budget_s
        self.start, self.end, self.timed_steps = 0.0, 0.0, 0

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = self._now()
        self.timed_steps = trainer.global_step - self.warmup
        if self.budget_s is not None and self.timed_steps >= 2 and self.end - self.start > self.budget_s:
            trainer.should_stop = True


def photos_per_second(
    datamodule, config, accelerator: str, precision: str, batch: int, steps: int, warmup: int, budget_s: float | None
) -> tuple[float, int]:
    """(photos/s over the timed steps, how many steps were timed)."""
    timer = StepTimer(warmup, budget_s)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(NameEncoderModule(config, warmup_steps=1), datamodule=datamodule)
    return timer.timed_steps * batch / (timer.end - timer.start), timer.timed_steps


def measure(
    size: str = "tiny",
    accelerator: str = "cpu",
    precision: str = "32-true",
    batch: int = 64,
    cached_batch: int | None = None,
    random_cache_features: bool = False,
    steps: int = 20,
    warmup: int = 3,
    workers: int = 2,
    photos: int = 2048,
    budget_s: float | None = None,
) -> dict:
    """Trains on the cache, then on streaming images, and returns the figures (the JSON this script prints).

    Holds the synthetic directory on disk (``photos`` JPEGs at 256²) and, for the cache, its (photos, F) features.

    Args:
        size: ``tiny`` (the test towers) or ``full`` (ViT-L/14 + ViT-bigG/14, random weights; fp16 on a GPU, as in
            ``configs/train/sdxl.yaml``).
        accelerator: Lightning's accelerator (``cpu``, ``gpu``).
        precision: the Trainer's precision, in Lightning's values (``32-true``, ``bf16-mixed``; ``--dtype``).
        batch: photos per step of the streaming path.
        cached_batch: photos per step of the cache path (default: ``batch``).
        random_cache_features: fill the cache with random values instead of running the towers (same speed).
        steps: timed steps per path at most (after ``warmup`` steps).
        warmup: untimed steps first.
        workers: the streaming DataLoader's workers.
        photos: photos in the synthetic directory.
        budget_s: per path, stop after the step that passes this many timed seconds (at least 2 steps).
    """
    if size == "tiny":
        config, image_size = tiny_name_encoder_config(), 48
    else:
        config, image_size = NameEncoderConfig(), 224
        for tower in config.towers:
            tower.pretrained = None  # the architecture with random weights: same cost, no download
            # fp16 matrix products are emulated, very slowly, on most CPUs; on a GPU the towers run as the recipe has
            tower.precision = "fp32" if accelerator == "cpu" else "fp16"
    device = "cpu" if accelerator == "cpu" else "cuda"
    cached_batch = cached_batch or batch
    timing = {"accelerator": accelerator, "precision": precision, "steps": steps, "warmup": warmup}
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        synthetic_laioncele(data_dir, config, photos, 64, device, random_cache_features)
        cached_data = CachedFeatureDataModule(str(data_dir), batch_size=cached_batch)
        cached, cached_steps = photos_per_second(cached_data, config, batch=cached_batch, budget_s=budget_s, **timing)
        streaming_data = StreamingImageDataModule(
            str(data_dir), batch_size=batch, num_workers=workers, image_size=image_size
        )
        streaming, streaming_steps = photos_per_second(streaming_data, config, batch=batch, budget_s=budget_s, **timing)
    return {
        "size": size,
        "accelerator": accelerator,
        "precision": precision,
        "tower_precision": config.towers[0].precision,
        "cached_batch": cached_batch,
        "streaming_batch": batch,
        "streaming_workers": workers,
        "cached_steps": cached_steps,
        "streaming_steps": streaming_steps,
        "cached_photos_per_second": round(cached, 1),
        "streaming_photos_per_second": round(streaming, 1),
        "cached_over_streaming": round(cached / streaming, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, renamed={"--precision": "--dtype"})
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument(
        "--dtype",
        default="32-true",
        help="the Trainer's precision, in Lightning's values as magicnaming train's --trainer.precision takes them: "
        "32-true, 16-mixed, bf16-mixed (the towers run in their config's dtype)",
    )
    parser.add_argument("--batch", type=int, default=64, help="photos per step of the streaming path")
    parser.add_argument("--cached_batch", type=int, help="photos per step of the cache path (default: --batch)")
    parser.add_boolean("--random_cache_features", help="skip running the towers for the cache")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup steps)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="streaming DataLoader workers")
    parser.add_argument("--photos", type=int, default=2048)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    result = measure(
        size=args.size,
        accelerator=args.accelerator,
        precision=args.dtype,
        batch=args.batch,
        cached_batch=args.cached_batch,
        random_cache_features=args.random_cache_features,
        steps=args.steps,
        warmup=args.warmup,
        workers=args.workers,
        photos=args.photos,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
