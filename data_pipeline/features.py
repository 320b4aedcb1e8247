"""Stage 4, features: the frozen CLIP-L and bigG image embeddings of every downloaded image, computed once.

Output (the feature cache): ``keys.parquet`` (key, url, identity_id, caption, shard) and one ``tower_{i}.npy`` per
tower, fp16, row-aligned with the keys. Cleaning reuses it, and the trainer's fast path trains from it. Work is
sharded across processes (one per GPU when several are given): process r takes shards r, r + P, ...; the parts are
merged in shard order, so the result does not depend on the number of processes.

Each photo is cropped to its face first when ``reference_crop`` says so (the encoder's crop, see
``namespace.encoder.reference_crop``); the stage's summary and the manifest record it, and the cached-feature trainer
checks it against the encoder's. Memory per process: one batch of decoded photos (and their crops) and the features
so far (fp16, E_i values per photo and tower).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from namespace.encoder import NameEncoderConfig, TowerConfig
from namespace.encoder.reference_crop import check_crop_mode, check_face_stack, crop_references
from namespace.faces import CropMode
from namespace.progress import progress

from .shards import read_samples

KEY_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("identity_id", pa.int32()),
        ("caption", pa.string()),
        ("shard", pa.string()),
    ]
)


@dataclass
class FeatureConfig:
    """Tower settings for feature extraction.

    Attributes:
        towers: the image towers (the name encoder's; ``configs/encoder/*.yaml`` hold both recipes).
        batch_size: images per forward pass.
        devices: one process per device (``["cuda:0", "cuda:1"]``); ``["cpu"]`` runs in this process.
        reference_crop: crop each photo to its face before the towers: none (the paper's whole portraits, the
            default), loose or aligned. It must be the ``reference_crop`` of the encoder trained on the cache.
    """

    towers: list[TowerConfig] = field(default_factory=lambda: NameEncoderConfig().towers)
    batch_size: int = 64
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    reference_crop: CropMode = "none"

    def __post_init__(self) -> None:
        self.towers = [TowerConfig(**t) if isinstance(t, dict) else t for t in self.towers]
        check_crop_mode(self.reference_crop, "features.reference_crop")


def _extract(shards: list[str], config: FeatureConfig, device: str, output: Path, part: int) -> None:
    """Embeds every image of ``shards`` with every tower; writes part ``part`` of the cache."""
    from namespace.encoder.towers import ImageTower

    towers = [ImageTower(tower).to(device) for tower in config.towers]
    keys, features = [], [[] for _ in towers]
    batch: list = []

    def flush() -> None:
        images = crop_references([sample["jpg"] for sample in batch], config.reference_crop, "features.reference_crop")
        for index, tower in enumerate(towers):
            pixels = tower.pixels(images).to(device)
            features[index].append(tower(pixels).cpu().half().numpy())
        batch.clear()

    for shard in progress(shards, desc=f"features[{part}]", unit="shard"):
        for sample in read_samples(shard):
            meta = sample["json"]
            keys.append({"key": sample["key"], "url": meta.get("url"), "identity_id": meta.get("identity_id"),
                         "caption": meta.get("caption"), "shard": Path(shard).name})  # fmt: skip
            batch.append(sample)
            if len(batch) == config.batch_size:
                flush()
    if batch:
        flush()
    pq.write_table(pa.Table.from_pylist(keys, schema=KEY_SCHEMA), output / f"keys.part{part}.parquet")
    for index, tower in enumerate(towers):
        stacked = (
            np.concatenate(features[index]) if features[index] else np.zeros((0, tower.config.embed_dim), np.float16)
        )
        np.save(output / f"tower_{index}.part{part}.npy", stacked, allow_pickle=False)


def _worker(rank: int, shards: list[str], config: FeatureConfig, output: Path) -> None:
    _extract(shards[rank :: len(config.devices)], config, config.devices[rank], output, rank)


def extract_features(shards: list[str], output: Path, config: FeatureConfig) -> dict:
    """Writes the feature cache for ``shards`` into ``output``; returns counts."""
    output = Path(output)
    if not shards:
        raise ValueError("shards: no downloaded shard to embed")
    check_face_stack(config.reference_crop, "features.reference_crop")  # before any tower loads
    world = len(config.devices)
    if world == 1:
        _extract(shards, config, config.devices[0], output, 0)
    else:
        torch.multiprocessing.spawn(_worker, args=(shards, config, output), nprocs=world, join=True)
    # merge the parts back into shard order (a shard's rows are contiguous and ordered within its part)
    keys = pa.concat_tables([pq.read_table(output / f"keys.part{r}.parquet") for r in range(world)])
    position = {Path(shard).name: i for i, shard in enumerate(shards)}
    shard_of = keys["shard"].to_pylist()
    permutation = sorted(range(keys.num_rows), key=lambda i: (position[shard_of[i]], i))
    keys = keys.take(pa.array(permutation, pa.int64()))
    pq.write_table(keys, output / "keys.parquet")
    for index in range(len(config.towers)):
        arrays = [np.load(output / f"tower_{index}.part{r}.npy", allow_pickle=False) for r in range(world)]
        np.save(output / f"tower_{index}.npy", np.concatenate(arrays)[permutation], allow_pickle=False)
    for r in range(world):
        os.remove(output / f"keys.part{r}.parquet")
        for index in range(len(config.towers)):
            os.remove(output / f"tower_{index}.part{r}.npy")
    towers = [f"{t.model}/{t.pretrained or 'random'}" for t in config.towers]
    dims = [t.embed_dim for t in config.towers]
    return {"images": keys.num_rows, "towers": towers, "dims": dims, "reference_crop": config.reference_crop}


def load_features(folder: Path) -> tuple[pa.Table, list[np.ndarray]]:
    """The cache: keys and one (n, E_i) fp16 array per tower, row-aligned; raises if they are not aligned."""
    folder = Path(folder)
    keys = pq.read_table(folder / "keys.parquet")
    arrays = []
    index = 0
    while (folder / f"tower_{index}.npy").exists():
        array = np.load(folder / f"tower_{index}.npy", mmap_mode="r", allow_pickle=False)
        if array.shape[0] != keys.num_rows:
            raise ValueError(f"{folder}: tower_{index}.npy has {array.shape[0]} rows, keys.parquet {keys.num_rows}")
        arrays.append(array)
        index += 1
    if not arrays:
        raise FileNotFoundError(f"{folder}: no tower_*.npy feature file")
    return keys, arrays
