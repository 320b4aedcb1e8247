"""Training throughput (photos/s): the feature cache vs streaming images, side by side in one run.

Both DataModules feed the same NameEncoderModule through a Lightning Trainer for the same number of steps, on one
synthetic LaionCele directory (synthetic faces in webdataset shards; its feature cache made by the same towers).
The cache path runs the head only; the streaming path decodes, crops and flips every photo and runs both frozen
towers on it, so the ratio grows with the towers' size.

    python benchmarks/training_throughput.py                                       # tiny towers, CPU
    python benchmarks/training_throughput.py --size full --batch 4 --cached-batch 256 --steps 3 --warmup 1 \\
        --workers 1 --random-cache-features                           # full size on a CPU (towers: ~10 s a photo)
    python benchmarks/training_throughput.py --size full --accelerator gpu --precision bf16-mixed --batch 256 \\
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
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file

from namespace import NameEncoder, NameEncoderConfig, NameSpaceStatistics
from namespace.data_pipeline.shards import ShardWriter
from namespace.testing import synthetic_face, tiny_name_encoder_config
from namespace.train.cached_data import CachedFeatureDataModule
from namespace.train.laioncele import FORMAT, FORMAT_VERSION
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
            writer.write(key, buffer.getvalue(), {"key": key, "identity_id": identity, "split": "train"})
            keys.append(key), identity_ids.append(identity), images.append(image)
        shards = [path.name for path in writer.paths]
    if random_features:
        features = torch.randn(photos, config.feature_dim)
    else:
        encoder = NameEncoder(config).to(device)
        features = torch.cat([encoder.image_features(images[i : i + 64]).cpu() for i in range(0, photos, 64)])
    (folder / "features").mkdir()
    start = 0
    for index, tower in enumerate(config.towers):
        part = features[:, start : start + tower.embed_dim].half().numpy()
        np.save(folder / "features" / f"tower_{index}.npy", part, allow_pickle=False)
        start += tower.embed_dim
    shard_of = [shards[i // 256] for i in range(photos)]
    pq.write_table(
        pa.table({"key": keys, "identity_id": identity_ids, "split": ["train"] * photos, "shard": shard_of}),
        folder / "features" / "keys.parquet",
    )
    names = torch.randn(identities, config.num_tokens, config.width) * 0.1
    statistics = NameSpaceStatistics.fit(names, rank=min(config.pca_rank, identities - 1))
    save_file(
        {
            "name_embeddings": names,
            "name_mean": statistics.mean,
            "name_norm": torch.tensor(statistics.norm),
            "pca_components": statistics.components.contiguous(),
            "pca_variances": statistics.variances,
        },
        str(folder / "name_embeddings.safetensors"),
    )
    pq.write_table(
        pa.table(
            {
                "identity_id": list(range(identities)),
                "name": [f"person {i}" for i in range(identities)],
                "num_images": [photos // identities] * identities,
                "split": ["train"] * identities,
                "row": list(range(identities)),
            }
        ),
        folder / "identities.parquet",
    )
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": {"train": shards, "val": []}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


class StepTimer(L.Callback):
    """Wall time of the steps after ``warmup`` (synchronising the GPU at both ends)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

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


def photos_per_second(datamodule, config, args, batch: int) -> float:
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(NameEncoderModule(config, warmup_steps=1), datamodule=datamodule)
    return args.steps * batch / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed on a GPU")
    parser.add_argument("--batch", type=int, default=64, help="photos per step of the streaming path")
    parser.add_argument("--cached-batch", type=int, help="photos per step of the cache path (default: --batch)")
    parser.add_argument("--random-cache-features", action="store_true", help="skip running the towers for the cache")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup steps)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="streaming DataLoader workers")
    parser.add_argument("--photos", type=int, default=2048)
    args = parser.parse_args()
    if args.size == "tiny":
        config, image_size = tiny_name_encoder_config(), 48
    else:
        config, image_size = NameEncoderConfig(), 224
        for tower in config.towers:
            tower.pretrained = None  # the architecture with random weights: same cost, no download
            if args.accelerator == "cpu":
                tower.precision = "fp32"  # fp16 matrix products are emulated, very slowly, on most CPUs
    device = "cuda" if args.accelerator == "gpu" else "cpu"
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        synthetic_laioncele(data_dir, config, args.photos, 64, device, args.random_cache_features)
        cached_batch = args.cached_batch or args.batch
        cached_data = CachedFeatureDataModule(str(data_dir), batch_size=cached_batch)
        cached = photos_per_second(cached_data, config, args, cached_batch)
        streaming_data = StreamingImageDataModule(
            str(data_dir), batch_size=args.batch, num_workers=args.workers, image_size=image_size
        )
        streaming = photos_per_second(streaming_data, config, args, args.batch)
    result = {
        "size": args.size,
        "accelerator": args.accelerator,
        "precision": args.precision,
        "cached_batch": cached_batch,
        "streaming_batch": args.batch,
        "streaming_workers": args.workers,
        "cached_photos_per_second": round(cached, 1),
        "streaming_photos_per_second": round(streaming, 1),
        "cached_over_streaming": round(cached / streaming, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
