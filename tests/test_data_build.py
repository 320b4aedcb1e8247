"""The whole LaionCele build on the embedded sample: its funnel equals the sample's known truth, the directory is
what the trainer expects, and a killed build resumes to the same directory."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import namespace as ns
from namespace.data_pipeline.build import build
from namespace.data_pipeline.commands import read_config
from namespace.data_pipeline.shards import read_samples

ROOT = Path(__file__).resolve().parents[1]


def final_photos(output):
    photos = []
    for shard in sorted(output.glob("*.tar")):
        for sample in read_samples(shard):
            photos.append({**sample["json"], "shard": shard.name, "size": sample["jpg"].size})
    return photos


@pytest.mark.slow
def test_match_funnel_equals_the_truth(built):
    _, manifest, truth, _ = built
    funnel = manifest["stages"]["match"]["funnel"]
    for reason, count in truth["rows"].items():
        assert funnel[reason] == count, reason


@pytest.mark.slow
def test_broken_urls_are_recorded_with_their_error(built):
    output, manifest, truth, _ = built
    failures = pq.read_table(output / "work/download/failures.parquet").to_pylist()
    assert {row["url"] for row in failures} == set(truth["broken_urls"])
    for row in failures:
        expected = "HTTP Error 404" if truth["broken_urls"][row["url"]] == "404" else "decoding"
        assert expected in row["error_message"], row
    assert manifest["stages"]["download"]["errors"] == {"http_404": 3, "not_an_image": 3}


@pytest.mark.slow
def test_duplicates_and_off_identity_photos_are_removed(built):
    output, _, truth, _ = built
    urls = [photo["url"] for photo in final_photos(output)]
    assert len(urls) == len(set(urls))
    surviving = {url for person in truth["identities"].values() if person["survives"] for url in person["clean_urls"]}
    for duplicate in truth["exact_duplicates"] + truth["near_duplicates"]:
        original = duplicate.rsplit("/", 1)[0] + "/" + duplicate.rsplit("/", 1)[1][:6] + ".jpg"  # NNN-00.jpg
        expected = 1 if original in surviving else 0  # one photo of the pair stays, unless its person is dropped
        assert (duplicate in urls) + (original in urls) == expected, duplicate
    assert not set(truth["off_identity"]) & set(urls)
    dropped = pq.read_table(output / "work/clean/dropped.parquet").to_pylist()
    others = [row for row in dropped if row["reason"] == "other_person"]
    assert {row["url"] for row in others} == set(truth["off_identity"])
    assert all(row["detail"].startswith("cluster ") and row["detail"].endswith(" < 0.750") for row in others)


@pytest.mark.slow
def test_the_at_least_five_rule(built):
    output, _, truth, _ = built
    identities = pq.read_table(output / "identities.parquet").to_pylist()
    survivors = {name for name, person in truth["identities"].items() if person["survives"]}
    assert {row["name"] for row in identities} == survivors
    assert all(row["num_images"] >= 5 for row in identities)
    photos = final_photos(output)
    for row in identities:
        assert sum(photo["identity_id"] == row["identity_id"] for photo in photos) == row["num_images"]


@pytest.mark.slow
def test_val_identities_never_reach_train_shards(built):
    output, manifest, _, _ = built
    identities = pq.read_table(output / "identities.parquet").to_pylist()
    val_ids = {row["identity_id"] for row in identities if row["split"] == "val"}
    assert val_ids and manifest["counts"]["val_identities"] == len(val_ids)
    photos = final_photos(output)
    train = [photo for photo in photos if photo["shard"].startswith("train-")]
    assert train and not {photo["identity_id"] for photo in train} & val_ids
    heldout = [photo for photo in photos if photo["split"] == "heldout"]
    assert heldout and all(p["shard"].startswith("val-") and p["identity_id"] not in val_ids for p in heldout)


@pytest.mark.slow
def test_stored_targets_equal_name_embeddings(built):
    output, manifest, _, _ = built
    from namespace.testing import tiny_sdxl_pipeline

    identities = pq.read_table(output / "identities.parquet").to_pylist()
    stored = load_file(output / "name_embeddings.safetensors")
    expected = ns.name_embeddings(tiny_sdxl_pipeline(), [row["name"] for row in identities])
    torch.testing.assert_close(stored["name_embeddings"], expected, rtol=0, atol=0)
    train = [row["row"] for row in identities if row["split"] == "train"]
    torch.testing.assert_close(stored["name_mean"], expected[train].mean(0), rtol=1e-6, atol=1e-6)
    assert manifest["counts"]["name_shape"] == [8, 80]


@pytest.mark.slow
def test_feature_cache_is_row_aligned(built):
    output, _, _, config = built
    keys = pq.read_table(output / "features/keys.parquet").to_pylist()
    photos = {photo["key"]: photo for photo in final_photos(output)}
    assert sorted(row["key"] for row in keys) == sorted(photos)
    for index, tower in enumerate(config.features.towers):
        array = np.load(output / f"features/tower_{index}.npy")
        assert array.shape == (len(keys), tower.embed_dim) and array.dtype == np.float16
    from namespace.encoder.towers import ImageTower

    tower = ImageTower(config.features.towers[0])
    first = keys[0]["key"]
    image = next(s["jpg"] for s in read_samples(output / photos[first]["shard"]) if s["key"] == first)
    expected = tower(tower.pixels([image]))[0].half().numpy()
    np.testing.assert_allclose(np.load(output / "features/tower_0.npy")[0], expected, atol=2e-3)


@pytest.mark.slow
def test_manifest_and_figures(built):
    output, _, _, _ = built
    saved = json.loads((output / "manifest.json").read_text())
    assert saved["format"] == "magicnaming-laioncele" and saved["format_version"] == 1
    assert saved["config"]["clean"]["duplicate_threshold"] == 0.94 and saved["config"]["pipeline"] == "tiny"
    thresholds = saved["stages"]["clean"]["thresholds"]  # the thresholds in effect, and where each comes from
    assert thresholds["cluster"] == {"value": 0.75, "source": "clean.cluster_threshold"}
    assert thresholds["min_consistency"] == {"value": 0.0, "source": "probe.min_consistency"}
    assert "face_rules" not in thresholds  # the demo's identity embedder is face_colors: no face rules
    assert saved["sources"]["captions"] == ["captions-000.parquet", "captions-001.parquet", "captions-002.parquet"]
    assert set(saved["stages"]) == {"sample", "names", "match", "download", "features", "probe", "clean", "targets",
                                    "assemble"}  # fmt: skip
    steps = dict(saved["funnel"])
    assert steps["identities kept"] == saved["counts"]["identities"]
    for figure in ("funnel.png", "images_per_identity.png"):
        assert Image.open(output / figure).size[0] > 100


def committed_chunks(stage: Path) -> list[str]:
    """The chunks a stage has committed in its partial folder (``chunks.py``), sorted."""
    folder = stage / "_chunks"
    entries = list(folder.iterdir()) if folder.is_dir() else []
    return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def run_until_a_chunk(command, partial: Path, log: Path) -> list[str]:
    """Starts the build and SIGKILLs its process group once ``partial`` holds a committed chunk; returns the chunks
    committed when it died (the stage must not have finished: the kill is inside it)."""
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not committed_chunks(partial) and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    ended = f"the build ended before {partial.name} committed a chunk:\n"
    assert process.poll() is None, ended + log.read_text()[-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert partial.is_dir() and not partial.with_suffix("").exists(), f"{partial.name}: killed after the stage finished"
    return committed_chunks(partial)


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_directory(built, tmp_path):
    """Killed inside the features (after some shards' chunks were committed), then inside the probe, the build
    resumes each stage at its first uncommitted chunk and ends with the reference build's bytes."""
    reference, manifest, _, config = built
    overlay = ["data:", "  source:", f"    sample_port: {config.source.sample_port}", "  features:", "    towers:"]
    for tower in config.features.towers:  # the reference build's towers (pre-trained, local checkpoints)
        overlay.append(
            f"      - {{model: {tower.model}, pretrained: {tower.pretrained}, embed_dim: {tower.embed_dim}}}"
        )
    settings = tmp_path / "overlay.yaml"
    settings.write_text("\n".join(overlay) + "\n")
    output = tmp_path / "resumed"
    demo = str(ROOT / "configs/data/demo.yaml")
    command = [sys.executable, "-m", "namespace.cli", "data", "build", "--config", demo, "--config", str(settings)]
    command += ["--output", str(output)]
    work = output / "work"
    shards = len(list((reference / "work/download/shards").glob("*.tar")))
    names = manifest["stages"]["probe"]["names"]
    assert shards >= 3 and names >= 3 * config.probe.names_per_chunk  # several chunks in each stage
    in_features = run_until_a_chunk(command, work / "features.partial", tmp_path / "first-run.log")
    assert 1 <= len(in_features) < shards and not (output / "manifest.json").exists()
    in_probe = run_until_a_chunk(command, work / "probe.partial", tmp_path / "second-run.log")
    assert 1 <= len(in_probe) < -(-names // config.probe.names_per_chunk)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    # the chunks committed before each kill were taken as they were, not redone
    for stage, committed in (("features", in_features), ("probe", in_probe)):
        record = json.loads((work / stage / "_chunks.json").read_text())
        assert record["resumed"] == committed, stage
        assert not (work / stage / "_chunks").exists(), stage  # merged, then deleted
    assert json.loads((work / "features/_chunks.json").read_text())["chunks"] == shards
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file() and "work" not in p.parts)
    assert files == sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file() and "work" not in p.parts)
    for relative in files:
        if relative.suffix == ".safetensors":  # its header is written from a hash map: same content, any key order
            first, second = load_file(reference / relative), load_file(output / relative)
            assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), relative
            assert safe_open(reference / relative, "pt").metadata() == safe_open(output / relative, "pt").metadata()
        else:
            assert (reference / relative).read_bytes() == (output / relative).read_bytes(), relative


@pytest.mark.slow
def test_features_sharded_over_two_processes_equal_one(built, tmp_path):
    from namespace.data_pipeline.download import shard_paths
    from namespace.data_pipeline.features import FeatureConfig, extract_features

    output, _, _, config = built
    two = FeatureConfig(towers=config.features.towers, batch_size=config.features.batch_size, devices=["cpu", "cpu"])
    extract_features(shard_paths(output / "work/download"), tmp_path, two)
    assert pq.read_table(tmp_path / "keys.parquet") == pq.read_table(output / "work/features/keys.parquet")
    for index in range(len(config.features.towers)):
        np.testing.assert_array_equal(
            np.load(tmp_path / f"tower_{index}.npy"), np.load(output / f"work/features/tower_{index}.npy")
        )


@pytest.mark.slow
def test_probe_over_two_processes_equals_one(built, tmp_path):
    from dataclasses import replace

    import pyarrow as pa

    from namespace.data_pipeline.probe import probe_names

    output, _, _, config = built
    reference = pq.read_table(output / "work/probe/probe.parquet").slice(0, 3)
    names = pq.read_table(output / "work/names/names.parquet")
    names = names.filter(pa.compute.is_in(names["identity_id"], reference["identity_id"].cast(pa.int32())))
    two = replace(config.probe, devices=["cpu", "cpu"], names_per_chunk=1)  # chunks 0 and 2 on one, 1 on the other
    embedder = config.probe.embedder or config.clean.identity_embedder
    summary = probe_names(names, tmp_path, two, config.pipeline, embedder, config.features.towers, config.clean.face)
    assert summary["names"] == 3 and json.loads((tmp_path / "_chunks.json").read_text())["chunks"] == 3
    assert pq.read_table(tmp_path / "probe.parquet").to_pylist() == reference.to_pylist()
    centroids = np.load(output / "work/probe/centroids.npy")[:3]
    np.testing.assert_array_equal(np.load(tmp_path / "centroids.npy"), centroids)


def test_chunks_commit_whole_and_resume(tmp_path):
    from namespace.data_pipeline.chunks import ChunkStore

    store = ChunkStore.open(tmp_path, {"batch_size": 2})
    with store.commit("00001") as folder:
        (folder / "rows.txt").write_text("1")
    with pytest.raises(RuntimeError, match="killed"), store.commit("00002") as folder:
        (folder / "rows.txt").write_text("half")
        raise RuntimeError("killed mid-chunk")
    (store.folder / ".00003.tmp-99999").mkdir()  # a chunk a killed process was writing
    assert store.done() == ["00001"] and not list(store.folder.glob(".00002*"))
    resumed = ChunkStore.open(tmp_path, {"batch_size": 2})
    assert resumed.resumed == ["00001"] and not (store.folder / ".00003.tmp-99999").exists()
    assert (resumed.path("00001") / "rows.txt").read_text() == "1"
    with resumed.commit("00002") as folder:
        (folder / "rows.txt").write_text("2")
    record = resumed.finish(["00001", "00002"])
    assert record == {"chunks": 2, "resumed": ["00001"], "settings": {"batch_size": 2}}
    assert not resumed.folder.exists() and ChunkStore.open(tmp_path, {"batch_size": 2}).finished
    stale = ChunkStore.open(tmp_path, {"batch_size": 4})  # other settings: the merge and its chunks are redone
    assert not stale.finished and stale.done() == [] and not (tmp_path / "_chunks.json").exists()
    with stale.commit("00001") as folder:
        (folder / "rows.txt").write_text("1")
    assert ChunkStore.open(tmp_path, {"batch_size": 8}).done() == []
    with pytest.raises(ValueError, match="chunk: expected a plain name"), stale.commit("_settings"):
        pass


@pytest.mark.slow
def test_shard_embeddings_commit_a_chunk_per_shard(built, tmp_path):
    from namespace.data_pipeline.download import shard_paths
    from namespace.data_pipeline.shard_embeddings import embed_shards
    from namespace.laioncele import open_feature_cache

    output, _, _, _ = built
    keys, _ = open_feature_cache(output / "work/features")
    shards = shard_paths(output / "work/download")
    embeddings, facts = embed_shards("thumbnail", shards, keys, batch_size=5, folder=tmp_path)
    assert isinstance(embeddings, np.memmap) and facts is None
    np.testing.assert_array_equal(embeddings, np.load(output / "work/clean/embeddings-thumbnail.npy"))
    record = json.loads((tmp_path / "_chunks-thumbnail.json").read_text())
    with_photos = len(set(keys["shard"].to_pylist()))  # a shard of broken URLs only holds no photo: no chunk
    assert record["chunks"] == with_photos and record["resumed"] == [] and not (tmp_path / "_chunks-thumbnail").exists()
    again, _ = embed_shards("thumbnail", shards, keys, batch_size=5, folder=tmp_path)  # finished: nothing redone
    np.testing.assert_array_equal(again, embeddings)


def test_one_stage_at_a_time(tmp_path):
    config = read_config(ROOT / "configs/data/demo.yaml")
    with pytest.raises(RuntimeError, match="the match stage needs the sample stage's output"):
        build(config, tmp_path, only="match")
    build(config, tmp_path, only="sample")
    build(config, tmp_path, only="names")
    summary = build(config, tmp_path, only="match")
    assert (
        summary["funnel"]["matched"] == json.loads((tmp_path / "work/sample/truth.json").read_text())["rows"]["matched"]
    )
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["match", "names", "sample"]
    with pytest.raises(ValueError, match="only: expected one of sample, names"):
        build(config, tmp_path, only="everything")


@pytest.mark.slow
def test_img2dataset_output_goes_to_the_download_log(tmp_path, capfd):
    config = read_config(ROOT / "configs/data/demo.yaml")
    for stage in ("sample", "names", "match"):
        build(config, tmp_path, only=stage)
    capfd.readouterr()
    summary = build(config, tmp_path, only="download")
    out, err = capfd.readouterr()
    assert summary["downloaded"] > 0
    terminal = (out + err).splitlines()
    assert terminal and all(line.startswith(("[", "      done in ")) for line in terminal), terminal  # steps only
    assert terminal[-1] == "[4/9] download: img2dataset (its own output: work/download/download.log) ..."
    log = (tmp_path / "work/download/download.log").read_text()
    assert "check your bandwidth speed" in log and "images per sec" in log  # img2dataset's advice and tables


def test_stage_log_takes_the_output_of_child_processes(tmp_path, capfd):
    from namespace.data_pipeline.stage_log import output_to

    child = "import sys; print('child out'); print('child err', file=sys.stderr)"
    with output_to(tmp_path / "stage.log") as terminal:
        print("parent out")
        subprocess.run([sys.executable, "-c", child], check=True)  # as a Spark JVM or img2dataset's workers
        print("progress", file=terminal)
    print("after")
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "progress\n")
    assert (tmp_path / "stage.log").read_text().split() == ["parent", "out", "child", "out", "child", "err"]
