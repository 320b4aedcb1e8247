"""The face stack in the LaionCele build, on real photos: the clean stage's face rules and "other person" check, the
probe's face consistency, the streaming shard embedder, and the calibrated thresholds of configs/data/laion.yaml."""

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from namespace.data_pipeline.clean import CleanConfig, clean, thresholds
from namespace.data_pipeline.commands import read_config
from namespace.data_pipeline.embedders import resolve_embedder, thumbnail
from namespace.data_pipeline.face_rules import FaceRules, face_facts
from namespace.data_pipeline.probe import ProbeConfig, consistency_threshold, passes, probe_score
from namespace.faces import FaceAnalysis, FaceConfig, crop_to_face

ROOT = Path(__file__).resolve().parents[1]
CALIBRATED = FaceConfig().threshold  # dlib's same-person cosine, namespace/faces/config.py
SOURCE = "same_person_threshold (namespace/faces/config.py)"
OBAMA = ["obama.jpg", "obama2.jpg", "obama3.jpg"]


def photos(real_faces, names):
    folder, _ = real_faces
    return [Image.open(folder / name).convert("RGB") for name in names]


def keys_for(names):
    """A feature-cache keys table for photos called ``names``, all captioned with one name (identity 0)."""
    return pa.table({
        "key": [f"{i:09d}" for i in range(len(names))],
        "url": [f"http://127.0.0.1/{name}" for name in names],
        "identity_id": pa.array([0] * len(names), pa.int32()),
        "caption": ["a photo of Barack Obama"] * len(names),
        "shard": ["00000.tar"] * len(names),
    })  # fmt: skip


@pytest.fixture(scope="module")
def analysed(real_faces, face_stack):
    """Every real photo analysed once (detection is the slow part): name → its one-row FaceAnalysis."""
    names = list(real_faces[1])
    analysis = face_stack.analyse(photos(real_faces, names))
    return {
        name: FaceAnalysis(analysis.embeddings[i : i + 1], analysis.faces[i : i + 1], analysis.sizes[i : i + 1],
                           analysis.reasons[i : i + 1])
        for i, name in enumerate(names)
    }  # fmt: skip


def analysis_of(face_stack, analysed, names, images):
    """The analysis of ``images`` (one each of ``names``): the real photos' from ``analysed``, others computed."""
    parts = [analysed.get(name) or face_stack.analyse([image]) for name, image in zip(names, images, strict=True)]
    return FaceAnalysis(np.concatenate([part.embeddings for part in parts]),
                        [part.faces[0] for part in parts], [part.sizes[0] for part in parts],
                        [part.reasons[0] for part in parts])  # fmt: skip


def embeddings_of(analysed, names):
    """(len(names), 128) face embeddings of real photos, from ``analysed``."""
    return np.concatenate([analysed[name].embeddings for name in names])


def run_clean(face_stack, analysed, names, images, output, probe=None, centroids=None, **settings):
    """clean() as the build calls it with the face embedder: one analysis gives the embeddings and the facts."""
    analysis = analysis_of(face_stack, analysed, names, images)
    config = CleanConfig(duplicate_embedder="thumbnail", **settings)
    summary = clean(keys_for(names), thumbnail(images), analysis.embeddings, probe, centroids, config, output,
                    face_facts(analysis))  # fmt: skip
    dropped = pq.read_table(output / "dropped.parquet").to_pylist()
    return summary, {row["url"].removeprefix("http://127.0.0.1/"): row for row in dropped}


def test_a_planted_photo_of_another_person_is_dropped_as_other_person(real_faces, face_stack, analysed, tmp_path):
    names = [*OBAMA, "biden.jpg"]
    summary, dropped = run_clean(face_stack, analysed, names, photos(real_faces, names), tmp_path, min_images=3)
    assert list(dropped) == ["biden.jpg"] and dropped["biden.jpg"]["reason"] == "other_person"
    score = float(dropped["biden.jpg"]["detail"].split()[1])  # "cluster 0.815 < 0.890"
    assert dropped["biden.jpg"]["detail"].startswith("cluster ") and score < CALIBRATED
    assert summary["funnel"] == {"photos": 4, "other_person": 1, "kept": 3, "identities_kept": 1}
    assert summary["thresholds"]["cluster"] == {"value": CALIBRATED, "source": f"face (dlib) calibrated {SOURCE}"}
    assert summary["thresholds"]["face"]["detector"] == "hog" and summary["thresholds"]["face_rules"]["source"]
    facts = pq.read_table(tmp_path / "faces.parquet").to_pylist()
    assert [row["faces"] for row in facts] == [1, 1, 1, 1] and facts[0]["key"] == "000000000"


def test_the_probe_images_catch_the_other_person_too(real_faces, face_stack, analysed, tmp_path):
    names = [*OBAMA, "biden.jpg"]
    # the name's probe images: two other photos of the person (in a build, SDXL's images of the name)
    consistency, faces, centroid = probe_score(embeddings_of(analysed, ["32bit.png", "obama.jpg"]))
    assert faces == 2 and passes(consistency, CALIBRATED)
    probe = pa.table({"identity_id": pa.array([0], pa.int32()), "passed": [True]})
    _, dropped = run_clean(face_stack, analysed, names, photos(real_faces, names), tmp_path, probe, centroid[None],
                           probe_threshold=CALIBRATED, min_images=3)  # fmt: skip
    assert list(dropped) == ["biden.jpg"] and dropped["biden.jpg"]["reason"] == "other_person"
    assert dropped["biden.jpg"]["detail"].startswith("probe ") and dropped["biden.jpg"]["detail"].endswith("< 0.890")


@pytest.mark.parametrize("visible, dropped_as", [(0.9, "partial_face"), (0.0, None)])
def test_partial_faces_are_handled_as_the_config_says(real_faces, face_stack, analysed, tmp_path, visible, dropped_as):
    names = [*OBAMA, "obama_partial_face.jpg", "obama_partial_face2.jpg"]
    rules = FaceRules(min_face_visible=visible)
    _, dropped = run_clean(
        face_stack, analysed, names, photos(real_faces, names), tmp_path, face_rules=rules, min_images=3
    )
    if dropped_as is None:
        assert dropped == {}  # kept: one person, every face above the same-person threshold
    else:
        assert sorted(dropped) == names[3:] and {row["reason"] for row in dropped.values()} == {dropped_as}
        assert all(row["detail"] == "visible 0.77 < 0.90" for row in dropped.values())


def test_group_photos_small_faces_and_no_faces_are_dropped_with_their_reason(
    real_faces, face_stack, analysed, tmp_path
):
    obama, biden = photos(real_faces, ["obama.jpg", "biden.jpg"])
    heads = [crop_to_face(image, "loose", face_stack).resize((300, 300)) for image in (obama, biden)]
    group = Image.new("RGB", (600, 300), (128, 128, 128))  # two real faces of comparable size, side by side
    group.paste(heads[0], (0, 0))
    group.paste(heads[1], (300, 0))
    small = Image.new("RGB", (1000, 1000), (128, 128, 128))  # a real face, 7% of the photo's side
    small.paste(heads[0].resize((150, 150)), (400, 400))
    plain = Image.new("RGB", (400, 400), (128, 128, 128))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    names = ["obama.jpg", "group.jpg", "small.jpg", "plain.jpg", "noise.jpg"]
    _, dropped = run_clean(face_stack, analysed, names, [obama, group, small, plain, noise], tmp_path, min_images=1)
    assert {name: row["reason"] for name, row in dropped.items()} == {
        "group.jpg": "several_faces",
        "small.jpg": "face_too_small",
        "plain.jpg": "no_face",
        "noise.jpg": "no_face",
    }
    assert dropped["group.jpg"]["detail"].startswith("2 faces, second/largest area 0.")
    assert dropped["plain.jpg"]["detail"] == "no face found (dlib hog detector, upsample 1)"
    size = float(dropped["small.jpg"]["detail"].split()[1])
    assert 0.05 < size < 0.1  # the pasted face: 150 px of a 1000 px canvas, the detector's box a little smaller


def test_the_probe_passes_one_person_and_fails_a_mixed_set(face_stack, analysed):
    threshold, source = consistency_threshold(ProbeConfig(min_consistency=None), "face", FaceConfig())
    assert threshold == CALIBRATED and source == f"face (dlib) calibrated {SOURCE}"
    consistent, faces, centroid = probe_score(embeddings_of(analysed, OBAMA))
    assert faces == 3 and passes(consistent, threshold) and abs(np.linalg.norm(centroid) - 1) < 1e-5
    mixed, faces, _ = probe_score(embeddings_of(analysed, ["obama.jpg", "obama3.jpg", "biden.jpg"]))
    assert faces == 3 and not passes(mixed, threshold) and mixed < consistent
    # images without a face do not count; fewer than two faces and the name fails
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    embeddings = np.concatenate([embeddings_of(analysed, OBAMA[:2]), face_stack.embed([noise])])
    score, faces, _ = probe_score(embeddings)
    assert faces == 2 and score == pytest.approx(float(embeddings[0] @ embeddings[1]), abs=1e-6)
    score, faces, centroid = probe_score(embeddings[1:])
    assert faces == 1 and np.isnan(score) and not passes(score, threshold) and not np.isnan(centroid).any()


def test_the_face_embedder_gives_unit_rows_and_nan_without_a_face(real_faces):
    embed = resolve_embedder("face", FaceConfig())
    assert resolve_embedder("face") is embed and embed.same_person_threshold == CALIBRATED  # loaded once
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    vectors = embed([*photos(real_faces, ["obama2.jpg", "biden.jpg"]), noise])
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert np.isnan(vectors[2]).all() and vectors[0] @ vectors[1] < CALIBRATED


@pytest.mark.slow
def test_shards_are_embedded_streaming_and_row_aligned(real_faces, analysed, tmp_path):
    from namespace.data_pipeline.shard_embeddings import embed_shards
    from namespace.data_pipeline.shards import ShardWriter

    folder, _ = real_faces
    names = ["obama.jpg", "biden.jpg", "obama2.jpg", "noise.jpg", "obama3.jpg"]
    noise = tmp_path / "noise.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    with ShardWriter(tmp_path, "shard", per_shard=3) as writer:  # two shards: 3 + 2 photos
        for i, name in enumerate(names):
            writer.write(f"{i:09d}", (noise if name == "noise.jpg" else folder / name).read_bytes(), {})
    order = [4, 2, 0, 3, 1]  # the cache's rows in another order than the shards'
    keys = keys_for([names[i] for i in order]).set_column(0, "key", pa.array([f"{i:09d}" for i in order]))
    keys = keys.set_column(4, "shard", pa.array([f"shard-{i // 3:06d}.tar" for i in order]))
    shards = [str(path) for path in writer.paths]
    embeddings, facts = embed_shards("face", shards, keys, FaceConfig(), batch_size=2)
    expected = [np.full((1, 128), np.nan) if names[i] == "noise.jpg" else embeddings_of(analysed, [names[i]])
                for i in order]  # fmt: skip
    np.testing.assert_allclose(embeddings, np.concatenate(expected), atol=1e-5)  # NaN rows at the same places
    assert facts["faces"].to_pylist() == [1, 1, 1, 0, 1]
    pooled, pooled_facts = embed_shards("face", shards, keys, FaceConfig(), batch_size=2, processes=2)
    np.testing.assert_array_equal(pooled, embeddings)  # two processes, one shard each: the same rows
    sizes = ["face_size", "face_visible", "second_face_ratio"]  # NaN without a face: compared as arrays
    assert pooled_facts.drop_columns(sizes) == facts.drop_columns(sizes)
    for column in sizes:
        np.testing.assert_array_equal(pooled_facts[column].to_numpy(), facts[column].to_numpy())
    pixels, none = embed_shards("thumbnail", shards, keys, batch_size=2)
    assert none is None
    images = [Image.open(noise if names[i] == "noise.jpg" else folder / names[i]).convert("RGB") for i in order]
    np.testing.assert_allclose(pixels, thumbnail(images), atol=1e-6)


def test_bad_face_settings_are_refused_before_any_work(real_faces, tmp_path):
    with pytest.raises(ValueError, match=r"clean\.cluster_threshold: null asks .* identity_embedder 'clip' has none"):
        thresholds(CleanConfig(identity_embedder="clip"))
    with pytest.raises(ValueError, match=r"clean\.duplicate_embedder: expected an embedder of the whole photo"):
        CleanConfig(duplicate_embedder="face")
    with pytest.raises(ValueError, match=r"face_rules\.min_face_visible: expected a share in \[0, 1\], got 1.5"):
        FaceRules(min_face_visible=1.5)
    keys = keys_for(["a.jpg", "b.jpg"])
    vectors = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="faces: the face identity embedder needs the per-photo face facts"):
        clean(keys, vectors, vectors, None, None, CleanConfig(duplicate_embedder="thumbnail"), tmp_path)
    with pytest.raises(ValueError, match=r"identity_embeddings: expected \(2, d\), one row per key, got shape \(3,"):
        clean(keys, vectors, np.eye(3, 2, dtype=np.float32), None, None, CleanConfig(cluster_threshold=0.5),
              tmp_path, face_facts_of_nothing(2))  # fmt: skip
    # probe centroids of another width are refused when the photos are compared with them, unused otherwise
    probe = pa.table({"identity_id": pa.array([0], pa.int32()), "passed": [True]})
    centroids, pixels = np.ones((1, 3), np.float32) / 3**0.5, CleanConfig(identity_embedder="face_colors", min_images=1,
                                                                         duplicate_embedder="thumbnail",
                                                                         cluster_threshold=0.5)  # fmt: skip
    with pytest.raises(ValueError, match=r"probe_centroids: expected width 2 .* got 3: did the probe use another"):
        clean(keys, vectors, vectors, probe, centroids, dataclasses.replace(pixels, probe_threshold=0.5), tmp_path)
    assert clean(keys, vectors, vectors, probe, centroids, pixels, tmp_path)["funnel"]["photos"] == 2


def face_facts_of_nothing(n):
    from namespace.faces import FaceAnalysis

    return face_facts(FaceAnalysis(np.full((n, 128), np.nan, np.float32), [[]] * n, [(8, 8)] * n, ["none"] * n))


def test_the_laion_config_takes_the_face_stack_and_its_calibrated_thresholds():
    config = read_config(ROOT / "configs/data/laion.yaml")
    assert config.clean.identity_embedder == "face" and config.clean.duplicate_embedder == "clip"
    assert config.clean.cluster_threshold == config.clean.probe_threshold == config.probe.min_consistency == CALIBRATED
    assert config.clean.face == FaceConfig() and config.clean.face_rules == FaceRules()
    assert CleanConfig().identity_embedder == "face" and thresholds(CleanConfig())["cluster"]["value"] == CALIBRATED


def test_a_probe_check_across_two_embedders_is_refused_before_the_build_starts(tmp_path):
    from namespace.data_pipeline.build import build

    config = read_config(ROOT / "configs/data/demo.yaml")  # clean: face_colors
    config.probe.embedder, config.clean.probe_threshold = "thumbnail", 0.5
    with pytest.raises(ValueError, match=r"clean\.probe_threshold: .* 'thumbnail' \(probe\.embedder\) and clean with"):
        build(config, tmp_path / "out")
    assert not (tmp_path / "out" / "work" / "sample").exists()  # nothing ran
