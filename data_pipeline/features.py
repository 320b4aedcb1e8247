"""Stage 4, features: the frozen CLIP-L and bigG image embeddings of every downloaded image, computed once.

Output (the feature cache): ``keys.parquet`` (key, url, identity_id, caption, shard) and one ``tower_{i}.npy`` per
tower, fp16, row-aligned with the keys. Cleaning reuses it, and the trainer's fast path trains from it.

Each download shard is one chunk (``chunks.py``): its keys and fp16 rows are committed as soon as it is embedded, so
a killed stage resumes at the first shard not committed. Work is sharded across processes (one per GPU when several
are given): process r takes pending shards r, r + P, ... Batches never span two shards, and the chunks are merged in
shard order, so the cache does not depend on the number of processes or on where a run was interrupted.

Each photo is cropped to its face first when ``reference_crop`` says so (the encoder's crop, see
``namespace.encoder.reference_crop``); the stage's summary and the manifest record it, and the cached-feature trainer
checks it against the encoder's.

Memory per process: one batch of decoded photos (and their crops) and one shard's features (fp16, ΣE_i values per
photo of the shard), flat in the number of shards. The merge holds one chunk at a time and streams it into the
memory-mapped tower files and the keys' parquet writer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from namespace.encoder import NameEncoderConfig, TowerConfig
from namespace.encoder.reference_crop import check_crop_mode, check_face_stack, crop_references
from namespace.faces import CropMode
from namespace.laioncele import FEATURE_KEYS, FeatureCacheWriter, tower_file
from namespace.progress import progress

from .chunks import ChunkStore
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


def _extract(shards: list[str], config: FeatureConfig, device: str, chunks: ChunkStore, part: int) -> None:
    """Embeds every image of ``shards`` with every tower, committing one chunk per shard (keys and fp16 rows per
    tower); batches never span two shards, so a shard's rows do not depend on which process embedded it."""
    from namespace.encoder.towers import ImageTower

    towers = [ImageTower(tower).to(device) for tower in config.towers]

    def embed(batch: list) -> list[np.ndarray]:
        images = crop_references([sample["jpg"] for sample in batch], config.reference_crop, "features.reference_crop")
        return [tower(tower.pixels(images).to(device)).cpu().half().numpy() for tower in towers]

    for shard in progress(shards, desc=f"features[{part}]", unit="shard"):
        keys, features, batch = [], [[] for _ in towers], []
        for sample in read_samples(shard):
            meta = sample["json"]
            keys.append({"key": sample["key"], "url": meta.get("url"), "identity_id": meta.get("identity_id"),
                         "caption": meta.get("caption"), "shard": Path(shard).name})  # fmt: skip
            batch.append(sample)
            if len(batch) == config.batch_size:
                for index, rows in enumerate(embed(batch)):
                    features[index].append(rows)
                batch.clear()
        if batch:
            for index, rows in enumerate(embed(batch)):
                features[index].append(rows)
        with chunks.commit(_chunk_name(shard)) as folder:
            pq.write_table(pa.Table.from_pylist(keys, schema=KEY_SCHEMA), folder / FEATURE_KEYS)
            for index, tower in enumerate(config.towers):
                empty = np.zeros((0, tower.embed_dim), np.float16)
                rows = np.concatenate(features[index]) if features[index] else empty
                np.save(folder / tower_file(index), rows, allow_pickle=False)


def _chunk_name(shard: str) -> str:
    return Path(shard).name.removesuffix(".tar")


def _worker(rank: int, shards: list[str], config: FeatureConfig, folder: str) -> None:
    if shards[rank :: len(config.devices)]:  # more devices than pending shards: nothing to load
        _extract(shards[rank :: len(config.devices)], config, config.devices[rank], ChunkStore(folder), rank)


def extract_features(shards: list[str], output: Path, config: FeatureConfig) -> dict:
    """Writes the feature cache for ``shards`` into ``output`` (the stage's partial folder); returns counts.

    Resumes inside ``output``: shards whose chunk is committed are not embedded again, and the merged cache is the
    same bytes as an uninterrupted run's.
    """
    output = Path(output)
    if not shards:
        raise ValueError("shards: no downloaded shard to embed")
    check_face_stack(config.reference_crop, "features.reference_crop")  # before any tower loads
    settings = {"towers": [asdict(t) for t in config.towers], "batch_size": config.batch_size,
                "reference_crop": config.reference_crop, "shards": [Path(s).name for s in shards]}  # fmt: skip
    chunks = ChunkStore.open(output, settings)
    names = [_chunk_name(shard) for shard in shards]
    if not chunks.finished:
        done = set(chunks.done())
        pending = [shard for shard, name in zip(shards, names, strict=True) if name not in done]
        world = len(config.devices)
        if world == 1 and pending:
            _extract(pending, config, config.devices[0], chunks, 0)
        elif pending:  # each process takes every world-th pending shard
            torch.multiprocessing.spawn(_worker, args=(pending, config, str(output)), nprocs=world, join=True)
        _merge(chunks, names, [t.embed_dim for t in config.towers], output)
        chunks.finish(names)
    images = pq.read_metadata(output / FEATURE_KEYS).num_rows
    towers = [f"{t.model}/{t.pretrained or 'random'}" for t in config.towers]
    dims = [t.embed_dim for t in config.towers]
    return {"images": images, "towers": towers, "dims": dims, "reference_crop": config.reference_crop}


def _merge(chunks: ChunkStore, names: list[str], dims: list[int], output: Path) -> None:
    """The chunks, in shard order, into ``keys.parquet`` and the ``tower_{i}.npy`` files; one chunk in memory."""
    rows = sum(pq.read_metadata(chunks.path(name) / FEATURE_KEYS).num_rows for name in names)
    start = 0
    with (
        FeatureCacheWriter(output, rows, dims) as cache,
        pq.ParquetWriter(output / FEATURE_KEYS, KEY_SCHEMA) as keys,
    ):
        for name in names:
            table = pq.read_table(chunks.path(name) / FEATURE_KEYS, schema=KEY_SCHEMA)
            arrays = [np.load(chunks.path(name) / tower_file(i), allow_pickle=False) for i in range(len(dims))]
            keys.write_table(table)
            cache.write(start, arrays)
            start += table.num_rows
