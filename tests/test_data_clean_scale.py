"""The clean stage at scale: the approximate near-duplicate search (IVF, HNSW) finds what the exact one finds, on
sample-like synthetic embeddings (groups of near copies among photos of a few people), through ``near_duplicates``
and the whole ``clean()`` call, from memory maps too; the capped majority cluster keeps what the uncapped one keeps."""

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from namespace.data_pipeline.clean import CleanConfig, clean, majority_cluster, near_duplicates
from namespace.data_pipeline.similarity_search import SearchSettings, similar_pairs

D = 64


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def around(rng, centres, spread):
    """A unit row near each of ``centres`` (unit rows): cosine ≈ 1 / √(1 + spread²) to it."""
    return unit(centres + spread / np.sqrt(D) * rng.standard_normal(centres.shape))


@pytest.fixture(scope="module")
def world():
    """~4,800 photos of 40 people (100 each, 10 of them another person's face) and 300 groups of 1-4 near copies
    (photo cosine ≥ 0.97 within a group, ~0.6 between two photos of one person). Keys in shuffled order, so a
    group's smallest key is any of its members."""
    rng = np.random.default_rng(0)
    people, per_person = 40, 100
    faces = unit(rng.standard_normal((people, D)))
    identity = np.repeat(np.arange(people), per_person)
    outsiders = np.zeros(len(identity), bool)
    outsiders[np.flatnonzero(np.arange(len(identity)) % per_person < 10)] = True
    face_of = np.where(outsiders, (identity + 1) % people, identity)
    photo = around(rng, faces[face_of], 0.8)  # the whole photo: its person, pose, background
    face = around(rng, faces[face_of], 0.5)  # the face embedder's view
    originals = rng.choice(len(photo), 300, replace=False)
    copies = np.repeat(originals, rng.integers(1, 5, len(originals)))
    photo = np.concatenate([photo, around(rng, photo[copies], 0.12)])
    face = np.concatenate([face, around(rng, face[copies], 0.05)])
    group = np.concatenate([np.arange(len(identity)), copies])  # the row each photo copies (itself: none)
    identity, outsiders = np.concatenate([identity, identity[copies]]), np.concatenate([outsiders, outsiders[copies]])
    keys = [f"{k:09d}" for k in rng.permutation(len(photo))]
    return {"photo": photo, "face": face, "group": group, "identity": identity, "outsider": outsiders, "keys": keys}


def planted_duplicates(world):
    """row → the row holding its group's smallest key, for every row that is not that one."""
    smallest = {}
    for row, group in enumerate(world["group"]):
        if group not in smallest or world["keys"][row] < world["keys"][smallest[group]]:
            smallest[group] = row
    return {row: smallest[g] for row, g in enumerate(world["group"]) if smallest[g] != row}


@pytest.mark.parametrize("approximate", ["ivf", "hnsw"])
def test_the_approximate_search_finds_the_same_near_duplicate_groups_as_the_exact_one(world, approximate):
    exact = near_duplicates(world["photo"], world["keys"], 0.94, SearchSettings())  # 4,800 rows < 20,000: exact
    found = near_duplicates(world["photo"], world["keys"], 0.94, SearchSettings(exact_below=0, approximate=approximate))
    assert exact == planted_duplicates(world) and len(exact) > 400  # every near copy, and nothing else
    assert found == exact


def test_a_float16_memory_map_is_searched_in_batches_without_a_whole_float32_copy(world, tmp_path):
    n = len(world["photo"])
    mapped = np.memmap(tmp_path / "photo.f16", np.float16, "w+", shape=(n, D))
    mapped[:] = world["photo"]
    mapped.flush()
    mapped = np.memmap(tmp_path / "photo.f16", np.float16, "r", shape=(n, D))
    expected = similar_pairs(world["photo"], 0.94, SearchSettings())
    # IVF holds its training sample too (40 rows a list: all 4,800 here, 0.18 n at 810,000 rows)
    for settings in (SearchSettings(), SearchSettings(exact_below=0, approximate="hnsw")):
        tracemalloc.start()  # numpy's allocations; the index lives in faiss's C++ memory and is not counted
        pairs = similar_pairs(mapped, 0.94, settings, batch_rows=500)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(pairs, expected)
        assert peak < n * D * 4 / 2, f"{settings}: {peak} bytes of numpy arrays, a float32 copy is {n * D * 4}"


def keys_table(world):
    return pa.table({
        "key": world["keys"],
        "url": [f"http://127.0.0.1/{key}.jpg" for key in world["keys"]],
        "identity_id": pa.array(world["identity"], pa.int32()),
        "caption": ["a photo"] * len(world["keys"]),
        "shard": ["00000.tar"] * len(world["keys"]),
    })  # fmt: skip


def run_clean(world, folder, photo, face, **settings):
    folder.mkdir()
    config = CleanConfig(duplicate_embedder="thumbnail", identity_embedder="face_colors", cluster_threshold=0.5,
                         max_compared_per_identity=60, **settings)  # fmt: skip
    summary = clean(keys_table(world), photo, face, None, None, config, folder)
    return summary, pq.read_table(folder / "kept.parquet"), pq.read_table(folder / "dropped.parquet")


def test_clean_keeps_and_drops_the_same_photos_with_the_exact_and_the_approximate_search(world, tmp_path):
    exact, kept, dropped = run_clean(world, tmp_path / "exact", world["photo"], world["face"])
    assert exact["search"]["duplicates"]["index"] == "IndexFlatIP" and exact["search"]["duplicates"]["exact"]
    reasons = dict(zip(dropped["key"].to_pylist(), dropped["reason"].to_pylist(), strict=True))
    for row in planted_duplicates(world):
        assert reasons[world["keys"][row]] == "near_duplicate"
    kept_rows = kept["feature_row"].to_pylist()
    assert not world["outsider"][kept_rows].any() and len(kept_rows) > 3000  # the other people's faces are out
    assert exact["search"]["majority_cluster"]["identities_capped"] == 40  # ~100 photos each, capped at 60

    # the same from float32 memory maps with the approximate search: identical tables, details included
    maps = {}
    for name in ("photo", "face"):
        maps[name] = np.memmap(tmp_path / f"{name}.f32", np.float32, "w+", shape=world[name].shape)
        maps[name][:] = world[name]
    approximate, kept_ivf, dropped_ivf = run_clean(world, tmp_path / "ivf", maps["photo"], maps["face"],
                                                   exact_search_below=0)  # fmt: skip
    assert approximate["search"]["duplicates"] == {
        "index": "IndexIVFFlat", "exact": False, "rows": len(world["keys"]), "exact_below": 0, "neighbours": 32,
        "lists": round(4 * len(world["keys"]) ** 0.5), "probes": 8, "seed": 0,
        "source": approximate["search"]["duplicates"]["source"],
    }  # fmt: skip
    assert kept_ivf.equals(kept) and dropped_ivf.equals(dropped) and approximate["funnel"] == exact["funnel"]

    # float16 memory maps: the same photos kept and dropped for the same reasons (scores differ in the 3rd digit)
    for name in ("photo", "face"):
        maps[name] = np.memmap(tmp_path / f"{name}.f16", np.float16, "w+", shape=world[name].shape)
        maps[name][:] = world[name]
    _, kept_half, dropped_half = run_clean(world, tmp_path / "half", maps["photo"], maps["face"],
                                           exact_search_below=0, approximate_index="hnsw")  # fmt: skip
    assert kept_half.equals(kept) and dropped_half.drop_columns("detail").equals(dropped.drop_columns("detail"))


def test_the_capped_majority_cluster_keeps_what_the_uncapped_one_keeps():
    rng = np.random.default_rng(1)
    face, other = unit(rng.standard_normal((2, D)))
    clean_person = around(rng, np.repeat(face[None], 900, 0), 0.5)
    whole, whole_scores = majority_cluster(clean_person, 0.5)
    capped, capped_scores = majority_cluster(clean_person, 0.5, max_compared=100, rng=np.random.default_rng(0))
    assert whole.all() and capped.all()
    assert not np.array_equal(capped_scores, whole_scores)  # a centroid of 100 photos, not of all 900 ...
    np.testing.assert_allclose(capped_scores, whole_scores, atol=0.02)  # ... close to it

    outsiders = rng.random(900) < 0.3
    mixed = np.where(outsiders[:, None], around(rng, np.repeat(other[None], 900, 0), 0.5), clean_person)
    capped, _ = majority_cluster(mixed, 0.5, max_compared=100, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(capped, ~outsiders)  # the majority kept, every outsider dropped
    np.testing.assert_array_equal(majority_cluster(mixed, 0.5)[0], capped)
    small, small_scores = majority_cluster(mixed[:80], 0.5, max_compared=100, rng=np.random.default_rng(0))
    whole_small, whole_small_scores = majority_cluster(mixed[:80], 0.5)  # below the cap: exactly as uncapped
    np.testing.assert_array_equal(small, whole_small)
    np.testing.assert_array_equal(small_scores, whole_small_scores)


def test_bad_search_settings_are_refused():
    with pytest.raises(ValueError, match=r"clean\.approximate_index: expected 'ivf' or 'hnsw', got 'lsh'"):
        CleanConfig(approximate_index="lsh")
    with pytest.raises(ValueError, match=r"clean\.hnsw_ef_search: expected at least clean\.duplicate_neighbours "
                                         r"\(32\), got 16"):  # fmt: skip
        CleanConfig(hnsw_ef_search=16)
    with pytest.raises(ValueError, match=r"clean\.max_compared_per_identity: expected at least 1, got 0"):
        CleanConfig(max_compared_per_identity=0)
