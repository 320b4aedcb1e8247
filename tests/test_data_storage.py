"""Cluster storage: the whole build reads its captions and name list from S3 and writes its LaionCele to S3 (moto's
S3 server on 127.0.0.1, a real S3 API), once with the Spark engine in local mode and once with multiprocessing: both
write the same LaionCele, and a build resumed on a fresh machine fetches the finished stages and uploads nothing."""

import json
import logging
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from namespace.data_pipeline.build import STAGES, build
from namespace.data_pipeline.commands import read_config
from namespace.data_pipeline.local_server import serve_folder
from namespace.data_pipeline.match import MatchConfig, match_files
from namespace.data_pipeline.names import build_names
from namespace.data_pipeline.sample import generate_sample
from namespace.data_pipeline.storage import expand

from .conftest import local_spark_session

pytestmark = pytest.mark.slow  # the build on a local S3, by Spark and by multiprocessing
ROOT = Path(__file__).resolve().parents[1]
BUCKET = "laion"


@pytest.fixture(scope="module")
def s3():
    """(s3fs filesystem, storage options) of an S3 server on 127.0.0.1 holding an empty bucket."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    options = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(BUCKET)
    yield fs, options
    server.stop()


@pytest.fixture(scope="module")
def sample_on_s3(s3, tmp_path_factory):
    """The demo's sample (images served on 127.0.0.1 while the module runs), its captions and name list on S3;
    yields the demo config pointed at them."""
    fs, options = s3
    config = read_config(ROOT / "configs/data/demo.yaml")
    folder = tmp_path_factory.mktemp("sample")
    with serve_folder(folder / "images") as url:
        truth = generate_sample(folder, url, config.source.sample)
        for path in sorted(folder.glob("captions-*.parquet")):  # row groups of 50: several Spark units per file
            pq.write_table(pq.read_table(path), folder / "upload.parquet", row_group_size=50)
            fs.put_file(str(folder / "upload.parquet"), f"{BUCKET}/captions/{path.name}")
        fs.put_file(str(folder / "names.txt"), f"{BUCKET}/names/names.txt")
        config.source.sample = None
        config.source.captions = [f"s3://{BUCKET}/captions/captions-*.parquet"]
        config.source.name_lists = [f"s3://{BUCKET}/names/names.txt"]
        config.source.storage_options = options
        config.output_storage_options = options
        yield config, truth


def with_engine(config, engine):
    from dataclasses import replace

    return replace(config, match=replace(config.match, engine=engine))


@pytest.fixture(scope="module")
def builds(sample_on_s3, tmp_path_factory):
    """{engine: manifest} of the whole build into s3://laion/<engine>, each in its own scratch folder."""
    config, _ = sample_on_s3
    scratch = tmp_path_factory.mktemp("scratch")
    manifests = {"multiprocessing": build(config, f"s3://{BUCKET}/multiprocessing", scratch=scratch / "mp")}
    pyspark = pytest.importorskip("pyspark")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)  # read when the context starts: workers need this pyarrow
        patch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        spark = local_spark_session(pyspark)  # the session the match stage finds (getOrCreate)
        try:
            manifests["spark"] = build(with_engine(config, "spark"), f"s3://{BUCKET}/spark", scratch=scratch / "sp")
        finally:
            spark.stop()
    return manifests


def download(fs, prefix: str, target: Path, skip_work: bool = True) -> list[str]:
    """Fetches every file under ``prefix`` (but ``work/``) into ``target``; returns their relative names."""
    names = []
    for name in sorted(fs.find(prefix)):
        relative = name[len(prefix) + 1 :]
        if skip_work and relative.startswith("work/"):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target / relative))
        names.append(relative)
    return names


def test_spark_and_multiprocessing_write_the_same_laioncele_to_s3(s3, sample_on_s3, builds, tmp_path):
    fs, _ = s3
    _, truth = sample_on_s3
    fs.invalidate_cache()
    files = {engine: download(fs, f"{BUCKET}/{engine}", tmp_path / engine) for engine in builds}
    assert files["spark"] == files["multiprocessing"]
    assert {"manifest.json", "identities.parquet"} <= set(files["spark"])
    assert any(name.endswith(".tar") for name in files["spark"]), files["spark"]
    assert any(name.endswith(".safetensors") for name in files["spark"]), files["spark"]
    for relative in files["spark"]:
        spark, local = tmp_path / "spark" / relative, tmp_path / "multiprocessing" / relative
        if relative == "manifest.json":
            continue
        if relative.endswith(".safetensors"):  # its header is written from a hash map: same content, any order
            first, second = load_file(spark), load_file(local)
            assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), relative
            assert safe_open(spark, "pt").metadata() == safe_open(local, "pt").metadata()
        else:
            assert spark.read_bytes() == local.read_bytes(), relative
    for name in ("matches.parquet", "rejected_examples.parquet"):  # the engines' own outputs: the same bytes
        assert fs.cat_file(f"{BUCKET}/spark/work/match/{name}") == fs.cat_file(
            f"{BUCKET}/multiprocessing/work/match/{name}"
        ), name

    manifests = {engine: json.loads((tmp_path / engine / "manifest.json").read_text()) for engine in builds}
    assert manifests["spark"]["config"]["match"]["engine"] == "spark"
    manifests["spark"]["config"]["match"]["engine"] = "multiprocessing"
    assert manifests["spark"] == manifests["multiprocessing"]  # the config differs only in the engine
    assert manifests["spark"] == json.loads(json.dumps(builds["multiprocessing"]))  # what build() returned
    funnel = manifests["spark"]["stages"]["match"]["funnel"]
    assert {reason: funnel[reason] for reason in truth["rows"]} == truth["rows"]
    assert manifests["spark"]["sources"]["captions"] == [f"captions-00{i}.parquet" for i in range(3)]
    options = manifests["spark"]["config"]["source"]["storage_options"]
    assert options["key"] == options["secret"] == "<redacted>" and options["endpoint_url"].startswith("http://127.")


def test_every_finished_stage_is_on_s3_with_its_marker(s3, builds):
    fs, _ = s3
    fs.invalidate_cache()
    for stage in STAGES:
        marker = json.loads(fs.cat_file(f"{BUCKET}/multiprocessing/work/{stage}/_stage.json"))
        marker.pop("images_per_identity", None)  # kept out of the manifest
        assert marker == json.loads(json.dumps(builds["multiprocessing"]["stages"][stage])), stage
    assert fs.isfile(f"{BUCKET}/multiprocessing/work/download/shards/00000.tar")


def test_resumed_build_on_a_fresh_machine_uploads_nothing(s3, sample_on_s3, builds, tmp_path):
    fs, _ = s3
    config, _ = sample_on_s3

    def listing():
        fs.invalidate_cache()
        found = fs.find(f"{BUCKET}/multiprocessing", detail=True)
        return {name: (info["ETag"], info["LastModified"]) for name, info in found.items()}

    before = listing()
    time.sleep(1.1)  # a re-upload would change LastModified (one-second resolution)
    manifest = build(config, f"s3://{BUCKET}/multiprocessing", scratch=tmp_path / "fresh")
    assert listing() == before
    assert json.loads(json.dumps(manifest)) == json.loads(json.dumps(builds["multiprocessing"]))
    for stage in STAGES:  # fetched from the output, whole, instead of run again
        assert (tmp_path / "fresh/work" / stage / "_stage.json").is_file(), stage
    assert (tmp_path / "fresh/work/features").exists() and not list((tmp_path / "fresh/work").glob("*.fetching"))


def test_missing_inputs_name_the_argument_and_the_url(s3, sample_on_s3, tmp_path):
    _, options = s3
    with pytest.raises(FileNotFoundError, match=r"source.captions: nothing matches 's3://laion/nope/\*.parquet'"):
        expand([f"s3://{BUCKET}/nope/*.parquet"], "source.captions", options)
    with pytest.raises(FileNotFoundError, match=r"name_lists: 's3://laion/names/missing.txt' does not exist"):
        build_names([f"s3://{BUCKET}/names/missing.txt"], tmp_path, storage_options=options)
    captions = expand([f"s3://{BUCKET}/captions/*.parquet"], "source.captions", options)
    assert captions == [f"s3://{BUCKET}/captions/captions-00{i}.parquet" for i in range(3)]
    with pytest.raises(FileNotFoundError, match=r"captions: 's3://laion/captions/gone.parquet' does not exist"):
        match_files([*captions, f"s3://{BUCKET}/captions/gone.parquet"], None, MatchConfig(), tmp_path, options)
