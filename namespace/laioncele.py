"""The LaionCele directory format, in one place: the builder writes it, the trainer, the benchmarks and the tests read
it through these functions (DESIGN.md, "File formats").

A LaionCele directory holds ``manifest.json`` (format, version, counts, config, per-stage status; written last, so
its presence marks a finished build), ``identities.parquet`` (one row per identity, row-aligned with the targets),
``name_embeddings.safetensors`` (the (M, N, D) targets and the train names' statistics; its metadata holds the
fingerprint of the text side that embedded them), the webdataset shards and the feature cache ``features/``:
``keys.parquet`` and one ``tower_{i}.npy`` (n, E_i) fp16 array per CLIP tower, row-aligned with the keys. The
build's work folder for the features stage uses the same cache layout.

Memory: the cache is opened memory-mapped and written through memory maps, so neither reading nor writing holds it:
pages come and go through the OS page cache, which processes of one machine share.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import atomic_write

FORMAT = "magicnaming-laioncele"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IDENTITIES = "identities.parquet"
NAME_EMBEDDINGS = "name_embeddings.safetensors"
FINGERPRINT = "fingerprint"  # the targets' metadata key: the text side's fingerprint (``namespace.fingerprint``), JSON
FEATURES = "features"
FEATURE_KEYS = "keys.parquet"
SHARD_KINDS = ("train", "val")  # train-*.tar: train photos; val-*.tar: unseen identities' and held-out photos

__all__ = [
    "FEATURES",
    "FEATURE_KEYS",
    "FINGERPRINT",
    "FORMAT",
    "FORMAT_VERSION",
    "IDENTITIES",
    "MANIFEST",
    "NAME_EMBEDDINGS",
    "SHARD_KINDS",
    "FeatureCacheWriter",
    "listed_shards",
    "manifest_text",
    "open_feature_cache",
    "read_fingerprint",
    "read_identities",
    "read_manifest",
    "read_name_embeddings",
    "shard_sample_metadata",
    "tower_file",
    "write_feature_keys",
    "write_identities",
    "write_manifest",
    "write_name_embeddings",
]


def tower_file(index: int) -> str:
    """The file name of tower ``index``'s features in a cache folder."""
    return f"tower_{index}.npy"


def read_manifest(folder: str | os.PathLike, argument: str = "data_dir") -> dict:
    """``manifest.json`` of a finished LaionCele directory, its format and version checked.

    Args:
        folder: the LaionCele directory.
        argument: how the caller's user named ``folder`` (the errors name it).
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: {str(folder)!r} has no {MANIFEST} (not a finished LaionCele build)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{argument}: {folder} holds format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{argument}: {folder} has format_version {manifest.get('format_version')!r}; this version of magicnaming "
            f"reads version {FORMAT_VERSION}: rebuild it with this version of magicnaming"
        )
    return manifest


def manifest_text(manifest: dict) -> str:
    """The bytes of ``manifest.json`` (sorted keys: a resumed build writes the same bytes)."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    """Writes ``manifest.json`` atomically."""
    text = manifest_text(manifest)
    atomic_write(Path(folder) / MANIFEST, lambda path: path.write_text(text))


def listed_shards(manifest: dict) -> dict[str, list[str]]:
    """The webdataset shards a manifest lists: ``{"train": [...], "val": [...]}`` (file names in the directory)."""
    shards = manifest.get("shards", {})
    return {kind: list(shards.get(kind, [])) for kind in SHARD_KINDS}


def shard_sample_metadata(key: str, identity_id: int, name: str, url: str, caption: str, split: str) -> dict:
    """The ``KEY.json`` beside each ``KEY.jpg`` in the shards; ``split`` is train, heldout or val."""
    return {"key": key, "identity_id": identity_id, "name": name, "url": url, "caption": caption, "split": split}


def read_identities(folder: str | os.PathLike) -> pa.Table:
    """``identities.parquet``: identity_id, name, num_images, split and row (of the targets)."""
    return pq.read_table(Path(folder) / IDENTITIES)


def write_identities(folder: str | os.PathLike, table: pa.Table) -> None:
    """Writes ``identities.parquet`` atomically."""
    atomic_write(Path(folder) / IDENTITIES, lambda path: pq.write_table(table, path))


def read_name_embeddings(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``name_embeddings.safetensors`` in the dtype they are stored in: ``name_embeddings`` (M, N, D),
    ``name_mean`` (N, D), ``name_norm`` (), ``pca_components`` (K, N·D) and ``pca_variances`` (K,)."""
    path = Path(folder) / NAME_EMBEDDINGS
    with safe_open(str(path), framework="pt") as file:  # the manifest carries the checked format and version
        return {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is not a mapping)


def read_fingerprint(path: str | os.PathLike) -> dict | None:
    """The text-side fingerprint of the pipeline that embedded the names: the ``fingerprint`` metadata of a LaionCele
    directory's ``name_embeddings.safetensors`` (or of ``path`` itself, a safetensors file such as the build's
    ``targets.safetensors``); None when none is recorded (directories built before fingerprints)."""
    path = Path(path)
    path = path / NAME_EMBEDDINGS if path.is_dir() else path
    with safe_open(str(path), framework="pt") as file:
        text = (file.metadata() or {}).get(FINGERPRINT)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its {FINGERPRINT!r} metadata is not JSON ({error})") from error


def write_name_embeddings(
    folder: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """Writes ``name_embeddings.safetensors`` atomically, with the format and its version added to ``metadata``."""
    metadata = {**metadata, "format": FORMAT, "format_version": str(FORMAT_VERSION)}
    tensors = {key: tensor.contiguous() for key, tensor in tensors.items()}
    atomic_write(Path(folder) / NAME_EMBEDDINGS, lambda path: save_file(tensors, str(path), metadata=metadata))


def open_feature_cache(folder: str | os.PathLike) -> tuple[pa.Table, list[np.ndarray]]:
    """A feature cache folder (LaionCele's ``features/`` or the build's work folder), memory-mapped.

    Returns:
        The keys table and one read-only (n, E_i) memmap per tower, row-aligned with the keys. Holds the keys in
        memory (a few dozen bytes per photo) and none of the features: their pages are read, and shared between
        processes, through the OS page cache.

    Raises:
        FileNotFoundError: no ``keys.parquet`` or no ``tower_0.npy``.
        ValueError: a tower's rows disagree with the keys' (the file is named).
    """
    folder = Path(folder)
    if not (folder / FEATURE_KEYS).is_file():
        raise FileNotFoundError(f"{folder}: no {FEATURE_KEYS} (the feature cache's keys)")
    keys = pq.read_table(folder / FEATURE_KEYS)
    arrays = []
    while (folder / tower_file(len(arrays))).is_file():
        name = tower_file(len(arrays))
        array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
        if array.ndim != 2 or array.shape[0] != keys.num_rows:
            raise ValueError(
                f"{folder}: {name} has {array.shape[0] if array.ndim else 0} rows but {FEATURE_KEYS} has "
                f"{keys.num_rows}: the feature cache is not aligned with its keys; rebuild the features stage"
            )
        arrays.append(array)
    if not arrays:
        raise FileNotFoundError(f"{folder}: no tower_*.npy feature file")
    return keys, arrays


def write_feature_keys(folder: str | os.PathLike, keys: pa.Table) -> None:
    """Writes the cache's ``keys.parquet`` atomically (row r describes row r of every tower file)."""
    atomic_write(Path(folder) / FEATURE_KEYS, lambda path: pq.write_table(keys, path))


class FeatureCacheWriter:
    """Streams feature rows into a cache folder's ``tower_{i}.npy`` files through memory maps.

    Holds nothing but the maps: written pages go to the OS page cache and on to disk. The keys are written
    separately (``write_feature_keys``). Usable as a context manager (``close`` on exit).

    Args:
        folder: the cache folder (created if missing).
        rows: photos in the cache (n).
        dims: each tower's feature width E_i.
        dtype: the stored dtype (fp16 in LaionCele).
        resume: reopen existing tower files of this shape and dtype instead of creating them (a resumed stage fills
            the rows it had not committed; other rows keep what they hold).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        rows: int,
        dims: list[int],
        dtype: np.dtype | type = np.float16,
        resume: bool = False,
    ) -> None:
        if rows < 0 or not dims or any(d < 1 for d in dims):
            raise ValueError(f"FeatureCacheWriter: expected rows >= 0 and widths >= 1, got rows={rows}, dims={dims}")
        self.folder, self.rows, self.dims, self.dtype = Path(folder), rows, list(dims), np.dtype(dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.arrays: list[np.memmap] = []
        for index, dim in enumerate(self.dims):
            path = self.folder / tower_file(index)
            if resume and path.is_file():
                array = np.load(path, mmap_mode="r+", allow_pickle=False)
                if array.shape != (rows, dim) or array.dtype != self.dtype:
                    raise ValueError(
                        f"{path}: holds {array.shape} {array.dtype}, the resumed cache expects "
                        f"{(rows, dim)} {self.dtype}"
                    )
            else:
                array = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=(rows, dim))
            self.arrays.append(array)

    def write(self, start: int, arrays: list[np.ndarray]) -> None:
        """Writes rows ``[start, start + len)`` of every tower: ``arrays[i]`` is (len, E_i)."""
        if len(arrays) != len(self.arrays):
            raise ValueError(f"FeatureCacheWriter.write: expected {len(self.arrays)} towers, got {len(arrays)}")
        count = len(arrays[0])
        for index, (array, dim) in enumerate(zip(arrays, self.dims, strict=True)):
            if array.shape != (count, dim):
                expected = (count, dim)
                raise ValueError(f"FeatureCacheWriter.write: arrays[{index}]: expected {expected}, got {array.shape}")
        if start < 0 or start + count > self.rows:
            raise ValueError(f"FeatureCacheWriter.write: rows [{start}, {start + count}) outside [0, {self.rows})")
        for target, array in zip(self.arrays, arrays, strict=True):
            target[start : start + count] = array

    def flush(self) -> None:
        """Pushes the written rows to the files (a committed chunk survives a crash of this process)."""
        for array in self.arrays:
            array.flush()

    def close(self) -> None:
        """Flushes and releases the maps."""
        self.flush()
        self.arrays = []

    def __enter__(self) -> FeatureCacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validation_samples(laioncele: Path) -> list[dict]:
    """Every sample of the ``val-*.tar`` shards: its metadata plus the JPEG bytes under ``jpg``."""
    samples: dict[str, dict] = {}
    for shard in sorted(laioncele.glob("val-*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive:
                key, _, extension = member.name.partition(".")
                data = archive.extractfile(member).read() if member.isfile() else None
                if extension == "json":
                    samples.setdefault(key, {}).update(json.loads(data))
                elif extension == "jpg":
                    samples.setdefault(key, {})["jpg"] = data
    return [sample for _, sample in sorted(samples.items()) if "jpg" in sample and "split" in sample]
