"""The LaionCele format module: round trips, the feature cache through memory maps, and the errors it raises."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors import safe_open

from namespace.laioncele import (
    FEATURE_KEYS,
    FORMAT,
    FORMAT_VERSION,
    FeatureCacheWriter,
    listed_shards,
    open_feature_cache,
    read_identities,
    read_manifest,
    read_name_embeddings,
    shard_sample_metadata,
    tower_file,
    write_feature_keys,
    write_identities,
    write_manifest,
    write_name_embeddings,
)


def _keys(count: int) -> pa.Table:
    return pa.table({"key": [f"{i:06d}" for i in range(count)], "identity_id": pa.array([i % 3 for i in range(count)])})


def test_directory_round_trip(tmp_path):
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "counts": {"identities": 2}, "b": 1, "a": [1, 2]}
    write_manifest(tmp_path, manifest)
    text = (tmp_path / "manifest.json").read_text()
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')  # sorted keys: resumed builds match
    assert read_manifest(tmp_path) == manifest
    identities = pa.table({"identity_id": pa.array([4, 9], pa.int32()), "name": ["A B", "C D"], "row": [0, 1]})
    write_identities(tmp_path, identities)
    assert read_identities(tmp_path).equals(identities)
    tensors = {"name_embeddings": torch.randn(2, 3, 5).half(), "name_norm": torch.tensor(1.5)}
    write_name_embeddings(tmp_path, tensors, {"statistics_from": "train identities"})
    read = read_name_embeddings(tmp_path)
    assert read["name_embeddings"].dtype == torch.float16  # the stored precision, not a float32 copy
    assert torch.equal(read["name_embeddings"], tensors["name_embeddings"]) and float(read["name_norm"]) == 1.5
    with safe_open(str(tmp_path / "name_embeddings.safetensors"), framework="pt") as file:
        metadata = file.metadata()
    assert metadata == {"format": FORMAT, "format_version": "1", "statistics_from": "train identities"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "identities.parquet",
        "manifest.json",
        "name_embeddings.safetensors",
    ]  # fmt: skip (no temporary left)


def test_feature_cache_streams_into_memmaps(tmp_path):
    rng = np.random.default_rng(0)
    towers = [rng.standard_normal((10, 4)).astype(np.float16), rng.standard_normal((10, 6)).astype(np.float16)]
    with FeatureCacheWriter(tmp_path, rows=10, dims=[4, 6]) as writer:
        assert all(isinstance(array, np.memmap) for array in writer.arrays)  # rows go to the files, not to memory
        for start in (6, 0, 3):  # any order: chunks are written where they belong
            stop = {6: 10, 0: 3, 3: 6}[start]
            writer.write(start, [tower[start:stop] for tower in towers])
    write_feature_keys(tmp_path, _keys(10))
    keys, arrays = open_feature_cache(tmp_path)
    assert keys.equals(_keys(10)) and len(arrays) == 2
    for array, tower in zip(arrays, towers, strict=True):
        assert isinstance(array, np.memmap) and not array.flags.writeable and array.dtype == np.float16
        np.testing.assert_array_equal(np.asarray(array), tower)
    # a resumed writer keeps the committed rows and fills the rest
    with FeatureCacheWriter(tmp_path, rows=10, dims=[4, 6], resume=True) as writer:
        writer.write(9, [np.zeros((1, 4), np.float16), np.zeros((1, 6), np.float16)])
    _, arrays = open_feature_cache(tmp_path)
    np.testing.assert_array_equal(arrays[0][:9], towers[0][:9])
    assert not arrays[0][9].any()
    with pytest.raises(ValueError, match=r"tower_0.npy: holds \(10, 4\) float16, the resumed cache expects \(11, 4\)"):
        FeatureCacheWriter(tmp_path, rows=11, dims=[4, 6], resume=True)


def test_feature_cache_writer_checks_its_rows(tmp_path):
    with FeatureCacheWriter(tmp_path, rows=4, dims=[2, 3]) as writer:
        with pytest.raises(ValueError, match=r"arrays\[1\]: expected \(2, 3\), got \(2, 2\)"):
            writer.write(0, [np.zeros((2, 2)), np.zeros((2, 2))])
        with pytest.raises(ValueError, match=r"rows \[3, 5\) outside \[0, 4\)"):
            writer.write(3, [np.zeros((2, 2)), np.zeros((2, 3))])
        with pytest.raises(ValueError, match="expected 2 towers, got 1"):
            writer.write(0, [np.zeros((2, 2))])


def test_misaligned_or_missing_cache_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no keys\.parquet"):
        open_feature_cache(tmp_path)
    write_feature_keys(tmp_path, _keys(5))
    with pytest.raises(FileNotFoundError, match=r"no tower_\*.npy feature file"):
        open_feature_cache(tmp_path)
    np.save(tmp_path / tower_file(0), np.zeros((5, 2), np.float16))
    np.save(tmp_path / tower_file(1), np.zeros((4, 2), np.float16))
    with pytest.raises(ValueError, match=f"tower_1.npy has 4 rows but {FEATURE_KEYS} has 5: the feature cache is not"):
        open_feature_cache(tmp_path)


@pytest.mark.parametrize(
    ("manifest", "error", "message"),
    [
        (None, FileNotFoundError, r"my_dir: '.*' has no manifest.json \(not a finished LaionCele build\)"),
        ({"format": "webdataset"}, ValueError, r"my_dir: .* holds format 'webdataset', expected 'magicnaming-la"),
        ({"format": FORMAT, "format_version": 7}, ValueError, r"format_version 7; this version of magicnaming reads "),
    ],
)
def test_manifest_errors_name_the_argument(tmp_path, manifest, error, message):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(error, match=message):
        read_manifest(tmp_path, argument="my_dir")


def test_listed_shards_and_shard_sample_metadata():
    manifest = {"shards": {"train": ["train-000000.tar"], "val": ["val-000000.tar", "val-000001.tar"]}}
    assert listed_shards(manifest) == {"train": ["train-000000.tar"], "val": ["val-000000.tar", "val-000001.tar"]}
    assert listed_shards({}) == {"train": [], "val": []}  # a manifest without shards lists none (the trainer refuses)
    metadata = shard_sample_metadata("000000001", 7, "Ada Lovelace", "http://127.0.0.1/1.jpg", "Ada", "heldout")
    assert metadata == {"key": "000000001", "identity_id": 7, "name": "Ada Lovelace",
                        "url": "http://127.0.0.1/1.jpg", "caption": "Ada", "split": "heldout"}  # fmt: skip
