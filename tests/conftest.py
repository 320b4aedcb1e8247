import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session")
def tiny_pipe():
    from namespace.testing import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline()


@pytest.fixture
def tiny_encoder(tiny_pipe):
    from namespace.testing import tiny_name_encoder

    return tiny_name_encoder(tiny_pipe)


@dataclass(frozen=True)
class TinyModels:
    """The tiny models saved as the commands read them: folders to pass, never to write into."""

    pipeline: Path  # tiny_sdxl_pipeline() (``tiny_pipe``) saved with save_pretrained
    encoder: Path  # tiny_name_encoder(tiny_pipe) (``tiny_encoder``) saved with save_pretrained
    ip_adapter: Path  # random IP-Adapter weights for the pipeline's UNet (weight name RANDOM_WEIGHT_NAME)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_pipe) -> TinyModels:
    """The tiny pipeline, the tiny encoder and random IP-Adapter weights, saved once per session."""
    from namespace.testing import tiny_name_encoder
    from namespace.testing.ip_adapter import save_random_ip_adapter

    root = tmp_path_factory.mktemp("tiny-models")
    models = TinyModels(root / "pipeline", root / "encoder", root / "ip-adapter")
    tiny_pipe.save_pretrained(models.pipeline)
    tiny_name_encoder(tiny_pipe).save_pretrained(models.encoder)
    save_random_ip_adapter(models.ip_adapter, tiny_pipe.unet)
    return models


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the one helper of the tests: import it from here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def says(text: str, *facts: object) -> bool:
    """Whether one line of ``text`` holds every fact (each as ``str``): tests check what a message says (the argument
    it names, the numbers, the file), not its wording."""
    return any(all(str(fact) in line for fact in facts) for line in text.splitlines())


@dataclass
class HtmlFacts:
    """What an HTML page shows, markup aside: its headings, image sources, table rows (cell texts) and text."""

    headings: list[str]
    images: list[str]
    rows: list[list[str]]
    text: str


def html_facts(html: str) -> HtmlFacts:
    """Reads ``html`` into :class:`HtmlFacts` (the standard library's parser: tags, quotes and classes may change)."""
    from html.parser import HTMLParser

    facts = HtmlFacts([], [], [], "")
    words: list[str] = []
    open_tags: list[str] = []

    class Reader(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in ("img", "br", "hr", "meta", "link", "input"):  # void elements: no end tag
                open_tags.append(tag)
            if tag == "img":
                facts.images.append(dict(attrs).get("src", ""))
            elif tag == "tr":
                facts.rows.append([])
            elif tag in ("td", "th") and facts.rows:
                facts.rows[-1].append("")

        def handle_endtag(self, tag):
            while open_tags and open_tags.pop() != tag:
                pass

        def handle_data(self, data):
            words.append(data)
            if open_tags and open_tags[-1] in ("h1", "h2", "h3", "h4"):
                facts.headings.append(data.strip())
            elif any(tag in ("td", "th") for tag in open_tags) and facts.rows and facts.rows[-1]:
                facts.rows[-1][-1] += data.strip()

    Reader().feed(html)
    facts.text = " ".join(" ".join(words).split())
    return facts


def wait_until_serving(server, url: str, log: Path, seconds: float = 180) -> None:
    """Waits until ``url`` answers 200 (straight to 127.0.0.1, no proxy); fails with the server's log if it exits
    or stays silent for ``seconds``."""
    import time
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + seconds
    while True:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with opener.open(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer on {url} in {seconds:.0f} s:\n{log.read_text()}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def tiny_towers(tmp_path_factory):
    """Tiny towers pre-trained on synthetic people (about 25 s): tower configs with local checkpoint paths."""
    from namespace.synthetic.tower_pretraining import pretrain_tiny_towers

    return pretrain_tiny_towers(tmp_path_factory.mktemp("towers"))


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_towers):
    """The embedded sample built once per session with configs/data/demo.yaml and the pre-trained tiny towers:
    (output, manifest, truth, config)."""
    from namespace.data_pipeline.build import build
    from namespace.data_pipeline.commands import read_config

    config = read_config(ROOT / "configs/data/demo.yaml")
    config.source.sample_port = free_port()
    config.features.towers = tiny_towers
    output = tmp_path_factory.mktemp("laioncele")
    manifest = build(config, output)
    truth = json.loads((output / "work/sample/truth.json").read_text())
    return output, manifest, truth, config


# The smaller miniature world of the tests: 6 famous people, trained in about two minutes on 2 cores.
SMALL_WORLD = {
    "famous": 6,
    "photos_per_person": 80,
    "generic_people": 150,
    "autoencoder_steps": 120,
    "denoiser_steps": 500,
    "judge_people": 120,
    "detector_people": 200,
    "judge_steps": 250,
}


@pytest.fixture(scope="session")
def worlds(tmp_path_factory):
    """The cache root of this test run's miniature worlds."""
    return tmp_path_factory.mktemp("worlds")


@pytest.fixture(scope="session")
def small_world(worlds):
    """The smaller miniature world, built once per test run: its folder."""
    from namespace.miniature.world import MiniatureWorldConfig, miniature_world

    return miniature_world(MiniatureWorldConfig(**SMALL_WORLD), worlds)


@pytest.fixture(scope="session")
def real_faces():
    """The real photos of the face_recognition 1.3.0 sdist (fetched once into the cache): (folder, {file: person})."""
    from namespace.testing.real_faces import PHOTOS, real_face_photos

    return real_face_photos(), dict(PHOTOS)


def evaluation_folder(root: Path, real_faces, tiny_models, tasks: dict, **config) -> Path:
    """``root`` holding an evaluation on the tiny models: a folder of real photos per person, a suite of ``tasks`` and
    ``eval.yaml`` (2 inference steps on the CPU, the tiny scorers, the face stack's identity; ``config`` adds or
    replaces keys). Returns ``root``."""
    import shutil

    import yaml

    folder, people = real_faces
    for name, person in people.items():
        if "partial" not in name:
            (root / "people" / person).mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / name, root / "people" / person / name)
    (root / "suite.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    scoring = {"text_image": "MagicNaming-Tiny-TI", "text_image_pretrained": None,
               "distance_features": "MagicNaming-Tiny-L", "identity": "face", "kid_subset_size": 4}  # fmt: skip
    settings = {"encoder": str(tiny_models.encoder), "pipeline": str(tiny_models.pipeline),
                "reference_folders": str(root / "people"), "suite": str(root / "suite.yaml"),
                "num_inference_steps": 2, "device": "cpu", "scoring": scoring}  # fmt: skip
    (root / "eval.yaml").write_text(yaml.safe_dump(settings | config))
    return root


@pytest.fixture(scope="session")
def face_stack():
    """The default (dlib) face embedder, loaded once per session."""
    from namespace.faces import load_face_embedder

    return load_face_embedder()


@pytest.fixture(scope="session")
def judge():
    """A small identity judge of the miniature world (16 px, trained in seconds), shared by the tests."""
    from namespace.miniature import train_judge

    return train_judge(16, people=100, photos=8, steps=200, seed=0)


@pytest.fixture(scope="session")
def detector():
    """A small attribute detector of the miniature world (16 px, with the person head), shared by the tests."""
    from namespace.miniature import train_attribute_detector

    return train_attribute_detector(16, people=200, photos=8, steps=300, seed=0)


def local_spark_session(pyspark):
    """A 2-core local Spark session, as spark-submit would set it up (the match stage finds it with getOrCreate);
    the caller sets ``PYSPARK_PYTHON`` first (its workers need this interpreter's pyarrow) and stops it."""
    return (
        pyspark.sql.SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
