"""The training DataModules without a trainer: epoch plans, real DataLoaders with workers, corrupt samples, resume."""

import io
import itertools
import multiprocessing
import pickle
import shutil
import tarfile

import numpy as np
import pyarrow as pa
import pytest
import torch

from namespace.laioncele import FeatureCacheWriter, open_feature_cache, read_name_embeddings, write_feature_keys
from namespace.train.cached_data import CachedFeatureDataModule
from namespace.train.epoch_plan import consumed_per_worker, deal_items, deal_shards, plan_epoch
from namespace.train.laioncele import FeatureCache
from namespace.train.streaming_data import StreamingImageDataModule

NAME_SHAPE = (8, 80, 40)  # tokens, width, tiny tower features (16 + 24)


class TestEpochPlan:
    def test_shards_are_dealt_once_and_balanced(self):
        counts = [16, 16, 16, 6, 30, 1, 9]
        dealt = deal_shards(counts, slots=3, seed=0, epoch=0, shuffle=True)
        assert sorted(itertools.chain(*dealt)) == list(range(len(counts)))
        loads = [sum(counts[s] for s in shards) for shards in dealt]
        assert max(loads) - min(loads) <= max(counts)

    def test_items_are_dealt_once_and_reshuffled_per_epoch(self):
        first, second = (
            deal_items(11, 2, seed=0, epoch=0, shuffle=True),
            deal_items(11, 2, seed=0, epoch=1, shuffle=True),
        )
        assert sorted(first[0] + first[1]) == list(range(11)) and first != second
        assert deal_items(11, 2, seed=0, epoch=0, shuffle=True) == first  # a function of its arguments only

    def test_every_rank_gets_the_same_number_of_batches(self):
        plan = plan_epoch([22, 16, 0, 5], ranks=2, workers=2, batch_size=4)  # ranks hold 22 and 5 samples
        assert plan.rank_batches(0) == [6, 4]
        assert plan.rank_batches(1) == [5, 5]  # 0 + 2 real batches; 8 padding batches spread over its two workers

    def test_round_robin_delivery(self):
        assert consumed_per_worker([1, 3], 3) == ([1, 2], 0)  # worker 0 is done, so worker 1 goes next
        assert consumed_per_worker([2, 2, 1], 4) == ([2, 1, 1], 1)
        assert consumed_per_worker([2, 2], 0) == ([0, 0], 0)
        with pytest.raises(ValueError, match="consumed"):
            consumed_per_worker([1, 1], 3)


class FakeTrainer:
    """The two attributes a DataModule reads from its trainer (rank and world size), for reading one rank's share
    outside of a distributed run; the DDP tests run the real thing."""

    def __init__(self, rank, world, epoch=0):
        self.global_rank, self.world_size, self.current_epoch = rank, world, epoch


def rank_batches(module_class, data_dir, rank, world, epoch=0, **settings):
    module = module_class(str(data_dir), **settings)
    module.trainer = FakeTrainer(rank, world, epoch)
    module.load(*NAME_SHAPE)
    return list(module.train_dataloader())


def real_keys(batches):
    return [key for batch in batches for key, weight in zip(batch["key"], batch["weight"], strict=True) if weight > 0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module_class", "settings"),
    [
        (CachedFeatureDataModule, {"batch_size": 5, "num_workers": 2}),
        (StreamingImageDataModule, {"batch_size": 5, "num_workers": 2, "image_size": 48, "shuffle_buffer": 8}),
    ],
)
def test_ranks_and_workers_read_every_photo_once_in_equal_batch_counts(built, module_class, settings):
    output, manifest = built[0], built[1]
    train_photos = manifest["counts"]["images"]["train"]
    shares = [rank_batches(module_class, output, rank, 3, **settings) for rank in range(3)]
    assert len({len(share) for share in shares}) == 1  # no rank runs out first
    keys = [key for share in shares for key in real_keys(share)]
    assert len(keys) == len(set(keys)) == train_photos
    assert sum(int(batch["skipped"]) for share in shares for batch in share) == 0
    # the next epoch reads the same photos in another order
    again = [rank_batches(module_class, output, rank, 3, epoch=1, **settings) for rank in range(3)]
    assert sorted(k for share in again for k in real_keys(share)) == sorted(keys)
    assert [real_keys(share) for share in again] != [real_keys(share) for share in shares]


def cached_rows_by_key(folder):
    """Every photo's (F,) features and split, read straight from the cache files: key → (features, split)."""
    keys, towers = open_feature_cache(folder / "features")
    features = np.concatenate([np.asarray(tower) for tower in towers], axis=1)
    pairs = zip(keys["key"].to_pylist(), keys["split"].to_pylist(), strict=True)
    return {key: (features[row], split) for row, (key, split) in enumerate(pairs)}


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_cached_batches_are_gathered_from_the_memory_mapped_cache(built, num_workers):
    """The cache stays in its files: every split holds row numbers, every batch is gathered from the read-only maps
    in the order the epoch plan deals the photos, and the targets keep their stored precision."""
    module = CachedFeatureDataModule(str(built[0]), batch_size=4, num_workers=num_workers)
    module.trainer = FakeTrainer(0, 1)
    data = module.load(*NAME_SHAPE)
    assert data.names.dtype == read_name_embeddings(built[0])["name_embeddings"].dtype
    assert all(isinstance(tower, np.memmap) and not tower.flags.writeable for tower in module.cache.towers)
    assert {split: rows.dtype for split, rows in module.splits.items()} == dict.fromkeys(module.splits, np.int64)
    truth = cached_rows_by_key(built[0])
    heldout, val = module.val_dataloader()
    for loader, split in ((module.train_dataloader(), "train"), (heldout, "heldout"), (val, "val")):
        batches = list(loader)
        keys = real_keys(batches)
        assert sorted(keys) == sorted(key for key, (_, s) in truth.items() if s == split)
        for batch in batches:
            real = batch["weight"] > 0
            expected = np.stack([truth[key][0] for key, keep in zip(batch["key"], real, strict=True) if keep])
            assert batch["features"].dtype == torch.float32
            np.testing.assert_array_equal(batch["features"][real].numpy(), expected.astype(np.float32))
    # the shuffled train order is not the cache order, so the sorted gather had rows to put back
    assert real_keys(list(module.train_dataloader())) != sorted(real_keys(list(module.train_dataloader())))


def test_the_feature_cache_pickles_as_a_reference_to_its_files(tmp_path):
    """A spawned DataLoader worker gets the cache by pickle: it must reopen the maps, not carry the features."""
    towers = [np.random.default_rng(i).standard_normal((2000, 256)).astype(np.float16) for i in range(2)]
    with FeatureCacheWriter(tmp_path, 2000, [256, 256]) as writer:
        writer.write(0, towers)
    write_feature_keys(tmp_path, pa.table({"key": [str(i) for i in range(2000)], "split": ["train"] * 2000}))
    keys, maps = open_feature_cache(tmp_path)
    cache = FeatureCache(tmp_path, keys, np.zeros(2000, np.int64), maps)
    pickled = pickle.dumps(cache)
    assert len(pickled) < sum(tower.nbytes for tower in towers) / 20  # 2 MB of features, not in the pickle
    copy = pickle.loads(pickled)
    assert all(isinstance(tower, np.memmap) and not tower.flags.writeable for tower in copy.towers)
    rows = np.array([5, 0, 1999, 3, 3, 1])  # unsorted, with a repeat: gathered in this order
    expected = np.concatenate([tower[rows] for tower in towers], axis=1).astype(np.float32)
    np.testing.assert_array_equal(copy.gather(rows).numpy(), expected)
    np.testing.assert_array_equal(cache.gather(rows).numpy(), expected)


@pytest.mark.slow
def test_cached_loader_runs_in_spawned_workers(built):
    module = CachedFeatureDataModule(str(built[0]), batch_size=4, num_workers=1)
    module.trainer = FakeTrainer(0, 1)
    module.load(*NAME_SHAPE)
    loader = module.train_dataloader()
    loader.multiprocessing_context = multiprocessing.get_context("spawn")
    spawned = list(loader)
    loader.multiprocessing_context = None
    forked = list(loader)
    assert real_keys(spawned) == real_keys(forked)
    assert all(torch.equal(a["features"], b["features"]) for a, b in zip(spawned, forked, strict=True))


@pytest.mark.slow
def test_streaming_batches_are_augmented_crops_of_the_requested_size(built):
    (batch, *_) = rank_batches(StreamingImageDataModule, built[0], 0, 1, batch_size=4, num_workers=0, image_size=40)
    assert batch["images"].shape == (4, 3, 40, 40) and batch["images"].dtype == torch.uint8
    assert batch["name_row"].shape == (4,) and batch["weight"].tolist() == [1.0] * 4


def rewrite_shard(path, corrupt_key, truncate):
    """Replaces one photo's JPEG bytes with garbage; optionally cuts the archive in the middle of a later sample."""
    members = []
    with tarfile.open(path) as archive:
        for member in archive:
            data = archive.extractfile(member).read()
            if member.name == f"{corrupt_key}.jpg":
                data = b"not a jpeg at all"
            members.append((member.name, data))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)


@pytest.mark.slow
def test_corrupt_photos_and_truncated_shards_are_skipped_and_counted(built, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(built[0], data, ignore=shutil.ignore_patterns("work"))
    shards = sorted(data.glob("train-*.tar"))
    with tarfile.open(shards[0]) as archive:
        first_key = archive.getnames()[0].split(".")[0]
    rewrite_shard(shards[0], first_key, truncate=False)
    rewrite_shard(shards[1], "none", truncate=True)
    batches = rank_batches(StreamingImageDataModule, data, 0, 1, batch_size=4, num_workers=2, image_size=48)
    keys, skipped = real_keys(batches), sum(int(batch["skipped"]) for batch in batches)
    assert first_key not in keys
    assert len(keys) + skipped == built[1]["counts"]["images"]["train"]  # every photo either read or counted
    assert skipped >= 2
    expected = rank_batches(StreamingImageDataModule, built[0], 0, 1, batch_size=4, num_workers=2, image_size=48)
    assert len(batches) == len(expected)  # the batch count does not change: DDP ranks stay in step


@pytest.mark.slow
def test_missing_shards_fail_before_training(built, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(built[0], data, ignore=shutil.ignore_patterns("work"))
    (data / "train-000001.tar").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"misses 1 shard\(s\) that manifest.json lists: \['train-000001.tar'\]"
    ):
        rank_batches(StreamingImageDataModule, data, 0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("module_class", [CachedFeatureDataModule, StreamingImageDataModule])
def test_resuming_mid_epoch_continues_with_the_next_batches(built, module_class):
    settings = {"batch_size": 3, "num_workers": 2}
    if module_class is StreamingImageDataModule:
        settings |= {"image_size": 48}
    full = real_keys(rank_batches(module_class, built[0], 0, 2, epoch=3, **settings))
    module = module_class(str(built[0]), **settings)
    module.trainer = FakeTrainer(0, 2, epoch=0)  # Lightning starts the first pass before restoring its epoch
    module.load(*NAME_SHAPE)
    module.load_state_dict({"epoch": 3, "batches": 5})
    resumed = real_keys(list(module.train_dataloader()))
    assert resumed == full[len(full) - len(resumed) :] and 0 < len(resumed) < len(full)
    # the resume point is used once: the next pass is a whole epoch
    assert len(real_keys(list(module.train_dataloader()))) == len(full)
    # a checkpoint from the end of epoch 3 resumes with all of epoch 4
    module.load_state_dict({"epoch": 3, "batches": len(module.train_dataloader())})
    next_epoch = real_keys(rank_batches(module_class, built[0], 0, 2, epoch=4, **settings))
    assert real_keys(list(module.train_dataloader())) == next_epoch


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, "batch_size: expected at least 1, got 0"),
        ({"num_workers": -1}, "num_workers: expected at least 0, got -1"),
        ({"crop_scale": (0.9, 0.5)}, r"crop_scale: expected 0 < min <= max <= 1, got \(0.9, 0.5\)"),
    ],
)
def test_bad_streaming_settings_name_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        StreamingImageDataModule("laioncele", **settings)
