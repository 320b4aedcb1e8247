"""Stage 5, probe: does SDXL know this name? The paper's check, before any photo is trusted.

For every name, the SDXL pipeline draws a few images (4 by default) of ``"a photo of {name}"``; they are embedded
with the identity embedder, and a name whose images are not consistent (mean pairwise cosine below the threshold)
is dropped: SDXL has no stable identity for it, so its name embedding is no target. With the ``face`` embedder only
the images with a face count (``probe_score``): fewer than two faces and the name fails. The probe images' mean
embedding is kept for the per-image identity check of the clean stage.

Names are probed in chunks of ``names_per_chunk`` (``chunks.py``), each committed when its names are done: a killed
probe resumes at the first chunk not committed. Chunks are shared out across processes, one per device, and merged
in the names' order, so the result does not depend on the number of devices or on where a run was interrupted.

Memory per process: the pipeline, one name's images and one chunk's scores and centroids. The merge holds a row per
name (identity, name, score: a few dozen bytes) and streams the centroids (d float32 per name) into a memory map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from namespace.encoder import TowerConfig
from namespace.faces import FaceConfig
from namespace.model_names import load_pipeline
from namespace.progress import progress

from .chunks import ChunkStore
from .embedders import calibrated_threshold, clip_features, l2_normalise, resolve_embedder


@dataclass
class ProbeConfig:
    """Probe settings.

    Attributes:
        enabled: run the probe (off: every name passes and no probe embedding is stored).
        images_per_name: images drawn per name (4 in the paper).
        prompt: the template; ``{name}`` is replaced.
        min_consistency: smallest accepted mean pairwise cosine of a name's probe images; None: the identity
            embedder's own calibrated ``same_person_threshold`` (the miniature world's judge has one: the cosine
            where it falsely accepts as often as it falsely rejects).
        num_inference_steps: denoising steps per probe image.
        image_size: probe image side.
        guidance_scale: classifier-free guidance scale.
        devices: one process per device.
        seed: probe image k of every name uses seed + k.
        embedder: the identity embedder of the probe images (None: the clean stage's ``identity_embedder``).
        names_per_chunk: names probed per committed chunk: a killed probe resumes at the first chunk not committed,
            so it loses at most this many names' images per process (16 SDXL names at 4 images: a few minutes on
            one GPU). Chunks are also the unit the devices share out.
    """

    enabled: bool = True
    images_per_name: int = 4
    prompt: str = "a photo of {name}"
    min_consistency: float | None = 0.5
    num_inference_steps: int = 25
    image_size: int = 1024
    guidance_scale: float = 5.0
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    seed: int = 0
    embedder: str | None = None
    names_per_chunk: int = 16

    def __post_init__(self) -> None:
        if self.names_per_chunk < 1:
            raise ValueError(f"probe.names_per_chunk: expected at least 1, got {self.names_per_chunk}")


class IdentityEmbedder:
    """Images → normalised identity embeddings: CLIP towers (``"clip"``) or a pixel/face embedder by name."""

    def __init__(self, name: str, towers: list[TowerConfig], device: str, face: FaceConfig | None = None) -> None:
        self.function = resolve_embedder(name, face)
        self.towers = []
        if self.function is None:
            from namespace.encoder.towers import ImageTower

            self.towers = [ImageTower(tower).to(device) for tower in towers]
        self.device = device

    def __call__(self, images) -> np.ndarray:
        if self.function is not None:
            return l2_normalise(self.function(images))
        features = [tower(tower.pixels(images).to(self.device)).cpu().numpy() for tower in self.towers]
        return clip_features(features)


def consistency(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine of (k, d) normalised embeddings."""
    k = embeddings.shape[0]
    similarity = embeddings @ embeddings.T
    return float((similarity.sum() - np.trace(similarity)) / (k * (k - 1)))


def probe_score(embeddings: np.ndarray) -> tuple[float, int, np.ndarray]:
    """One name's (k, d) probe embeddings (NaN rows: no face) → (consistency, faces, centroid).

    consistency: the mean pairwise cosine of the rows with a face, NaN when fewer than two (the name then fails);
    faces: how many rows have one; centroid: (d,) their normalised mean (NaN without any).
    """
    found = embeddings[~np.isnan(embeddings).any(axis=1)]
    score = consistency(found) if len(found) >= 2 else float("nan")
    centroid = l2_normalise(found.mean(0, keepdims=True))[0] if len(found) else np.full(embeddings.shape[1], np.nan)
    return score, len(found), centroid.astype(np.float32)


def passes(score: float, threshold: float) -> bool:
    """Whether a name's consistency passes the probe (NaN, too few faces, never does)."""
    return bool(score >= threshold)


def _probe(
    chunks: list[tuple[int, list[tuple[int, str]]]],
    config: ProbeConfig,
    pipeline: str,
    embedder: str,
    towers,
    device: str,
    store: ChunkStore,
    face: FaceConfig | None = None,
) -> None:
    """Probes each chunk's names and commits the chunk: ``probe.parquet`` (identity_id, name, consistency, faces)
    and ``centroids.npy`` (row-aligned)."""
    pipe = load_pipeline(pipeline, "text2img", "auto", device)
    embed = IdentityEmbedder(embedder, towers, device, face)
    bar = progress(None, total=sum(len(names) for _, names in chunks), desc=f"probe[{device}]", unit="name")
    for index, names in chunks:
        rows, centroids = [], []
        for identity_id, name in names:
            images = []
            for k in range(config.images_per_name):
                generator = torch.Generator().manual_seed(config.seed + k)
                images += pipe(
                    config.prompt.format(name=name),
                    num_inference_steps=config.num_inference_steps,
                    guidance_scale=config.guidance_scale,
                    height=config.image_size,
                    width=config.image_size,
                    generator=generator,
                ).images
            score, faces, centroid = probe_score(embed(images))
            rows.append({"identity_id": identity_id, "name": name, "consistency": score, "faces": faces})
            centroids.append(centroid)
            bar.update()
        with store.commit(_chunk_name(index)) as folder:
            pq.write_table(pa.Table.from_pylist(rows), folder / "probe.parquet")
            np.save(folder / "centroids.npy", np.stack(centroids), allow_pickle=False)
    bar.close()


def _chunk_name(index: int) -> str:
    return f"names-{index:06d}"


def _worker(rank: int, chunks, config, pipeline, embedder, towers, folder: str, face) -> None:
    chunks = chunks[rank :: len(config.devices)]
    if chunks:  # more devices than pending chunks: nothing to load
        _probe(chunks, config, pipeline, embedder, towers, config.devices[rank], ChunkStore(folder), face)


def probe_names(
    names: pa.Table,
    output: Path,
    config: ProbeConfig,
    pipeline: str,
    embedder: str,
    towers: list[TowerConfig],
    face: FaceConfig | None = None,
) -> dict:
    """Writes ``probe.parquet`` (identity_id, name, consistency, faces, passed) and ``centroids.npy`` (row-aligned),
    in the order of ``names``.

    ``faces``: how many of the name's images gave an embedding (a face, for the ``face`` embedder, set by ``face``).
    Resumes inside ``output`` (the stage's partial folder): chunks of ``config.names_per_chunk`` names already
    committed are not drawn again.
    """
    output = Path(output)
    pairs = list(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    if not config.enabled:
        rows = [{"identity_id": i, "name": n, "consistency": float("nan"), "passed": True} for i, n in pairs]
        pq.write_table(pa.Table.from_pylist(rows), output / "probe.parquet")
        return {"enabled": False, "names": len(rows), "passed": len(rows)}
    if config.images_per_name < 2:
        raise ValueError(
            f"probe.images_per_name: expected at least 2 (consistency compares images), got {config.images_per_name}"
        )
    if not pairs:
        raise ValueError("names: no name to probe (no downloaded photo names anyone)")
    threshold, source = consistency_threshold(config, embedder, face)  # before any image is drawn
    size = config.names_per_chunk
    chunks = [(i // size, pairs[i : i + size]) for i in range(0, len(pairs), size)]
    settings = {key: value for key, value in asdict(config).items() if key != "devices"}
    settings |= {"pipeline": pipeline, "embedder": embedder, "towers": [asdict(t) for t in towers],
                 "face": asdict(face) if face else None, "names": _digest(pairs)}  # fmt: skip
    store = ChunkStore.open(output, settings)
    if not store.finished:
        done = set(store.done())
        pending = [(index, chunk) for index, chunk in chunks if _chunk_name(index) not in done]
        world = len(config.devices)
        if world == 1 and pending:
            _probe(pending, config, pipeline, embedder, towers, config.devices[0], store, face)
        elif pending:  # each process takes every world-th pending chunk
            args = (pending, config, pipeline, embedder, towers, str(output), face)
            torch.multiprocessing.spawn(_worker, args=args, nprocs=world)
        _merge(store, [_chunk_name(index) for index, _ in chunks], threshold, output)
        store.finish([_chunk_name(index) for index, _ in chunks])
    passed = pc.sum(pq.read_table(output / "probe.parquet", columns=["passed"])["passed"]).as_py() or 0
    summary = {"enabled": True, "names": len(pairs), "passed": passed, "failed": len(pairs) - passed}
    return summary | {"min_consistency": threshold, "min_consistency_source": source}


def _digest(pairs: list[tuple[int, str]]) -> str:
    """A fingerprint of the names probed (a resumed probe's chunks must cover the same names)."""
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _merge(store: ChunkStore, chunks: list[str], threshold: float, output: Path) -> None:
    """The chunks, in order, into ``probe.parquet`` (a row per name: held whole) and ``centroids.npy`` (streamed
    into a memory map, one chunk at a time)."""
    counts = [pq.read_metadata(store.path(chunk) / "probe.parquet").num_rows for chunk in chunks]
    width = np.load(store.path(chunks[0]) / "centroids.npy", mmap_mode="r").shape[1]
    centroids = np.lib.format.open_memmap(output / "centroids.npy", "w+", np.float32, (sum(counts), width))
    rows, start = [], 0
    for chunk, count in zip(chunks, counts, strict=True):
        rows += pq.read_table(store.path(chunk) / "probe.parquet").to_pylist()
        centroids[start : start + count] = np.load(store.path(chunk) / "centroids.npy", allow_pickle=False)
        start += count
    centroids.flush()
    del centroids
    for row in rows:
        row["passed"] = passes(row["consistency"], threshold)
    pq.write_table(pa.Table.from_pylist(rows), output / "probe.parquet")


def consistency_threshold(config: ProbeConfig, embedder: str, face: FaceConfig | None = None) -> tuple[float, str]:
    """The consistency threshold and where it came from (the config, or the embedder's calibration)."""
    if config.min_consistency is not None:
        return float(config.min_consistency), "probe.min_consistency"
    calibrated = calibrated_threshold(embedder, face)
    if calibrated is None:
        raise ValueError(
            f"probe.min_consistency: null asks for the embedder's calibrated threshold, but embedder {embedder!r} "
            "has no same_person_threshold; set a number"
        )
    return calibrated
