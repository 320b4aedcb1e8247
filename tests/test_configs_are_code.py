"""Configs are code, checkpoints are pickles: ``magicnaming train`` refuses a checkpoint from a URL before it loads
anything, reads a local one with ``weights_only=True``, and saves the run's config redacted; the data pipeline's
``module:function`` embedders are the only config-driven import there."""

import ast
import http.server
import pathlib
import pickle
import threading

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml

from namespace.cli import main
from namespace.laioncele import (
    FEATURES,
    FORMAT,
    FORMAT_VERSION,
    write_feature_keys,
    write_identities,
    write_manifest,
    write_name_embeddings,
)
from namespace.statistics import NameSpaceStatistics
from namespace.train.commands import training_cli

from .conftest import ROOT

TINY = str(ROOT / "configs/train/tiny.yaml")


class Pickled:
    """Unpickling it touches ``path``: what a hostile checkpoint would do, harmlessly."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def hostile_checkpoint(path: pathlib.Path, ran: pathlib.Path) -> pathlib.Path:
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.0", "payload": Pickled(ran)}, path)
    return path


@pytest.fixture
def checkpoint_server(tmp_path):
    """(URL of a hostile checkpoint served on 127.0.0.1, the requests it received, the file its unpickling touches)."""
    ran = tmp_path / "unpickled"
    hostile_checkpoint(tmp_path / "hostile.ckpt", ran)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hostile.ckpt", requests, ran
    server.shutdown()


def tiny_laioncele(folder: pathlib.Path, photos_per_identity: int = 6) -> pathlib.Path:
    """A LaionCele directory of random names and features in the shapes of configs/train/tiny.yaml (8 identities,
    (N, D) = (8, 80), towers of 16 and 24): what the trainer reads, without a build."""
    (folder / FEATURES).mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    names = torch.randn(8, 8, 80, generator=generator)  # (M, N, D)
    splits = ["train"] * 6 + ["val"] * 2
    rows = list(range(8))
    write_identities(folder, pa.table({"identity_id": pa.array(rows, pa.int32()), "row": rows, "split": splits,
                                       "name": [f"Person {i}" for i in rows]}))  # fmt: skip
    statistics = NameSpaceStatistics.fit(names[:6], rank=5)
    tensors = {"name_embeddings": names.half(), "name_mean": statistics.mean, "pca_variances": statistics.variances,
               "name_norm": torch.tensor(statistics.norm), "pca_components": statistics.components}  # fmt: skip
    write_name_embeddings(folder, tensors, {})
    # each train identity's first photo is held out; val identities' photos are unseen
    photo_splits = [s if s == "val" or photo else "heldout" for s in splits for photo in range(photos_per_identity)]
    identity_ids = pa.array(np.repeat(np.arange(8), photos_per_identity), pa.int32())
    keys = pa.table({"key": [f"{row:09d}" for row in range(len(photo_splits))], "identity_id": identity_ids,
                     "split": photo_splits})  # fmt: skip
    write_feature_keys(folder / FEATURES, keys)
    for tower, width in enumerate((16, 24)):
        features = torch.randn(len(photo_splits), width, generator=generator).numpy().astype(np.float16)
        np.save(folder / FEATURES / f"tower_{tower}.npy", features, allow_pickle=False)
    write_manifest(folder, {"format": FORMAT, "format_version": FORMAT_VERSION})
    return folder


def train(*args: str) -> int:
    """``magicnaming train`` with the tiny recipe, shortened: no logger, quiet."""
    return main(["train", args[0], "--config", TINY, "--trainer.enable_progress_bar", "false", *args[1:]])


@pytest.mark.parametrize("where", ["http", "s3://bucket/runs/last.ckpt", "registry:tiny:v1"])
def test_a_checkpoint_from_elsewhere_is_refused_before_anything_loads(where, checkpoint_server, tmp_path, capsys):
    url, requests, ran = checkpoint_server
    signed = f"{url}?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=0123abcd" if where == "http" else where
    args = ["--data.data_dir", str(tmp_path / "nothing"), "--trainer.default_root_dir", str(tmp_path)]
    assert train("validate", *args, "--trainer.logger", "false", "--ckpt_path", signed) == 1
    error = capsys.readouterr().err
    assert "--ckpt_path: expected a checkpoint file on this machine (or last, best, hpc), got" in error, error
    assert "0123abcd" not in error and "AKIAEXAMPLE" not in error  # the signed URL is not echoed
    assert "has no manifest.json" not in error  # refused before the data (or anything else) was read
    assert requests == [] and not ran.exists()


def test_a_local_checkpoint_resumes_with_weights_only_and_a_hostile_one_runs_nothing(tmp_path):
    data = ["--data.data_dir", str(tiny_laioncele(tmp_path / "data")), "--trainer.check_val_every_n_epoch", "1"]

    def folders(name: str) -> list[str]:
        return [
            "--trainer.default_root_dir",
            str(tmp_path / name),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]

    assert train("fit", *data, *folders("first"), "--trainer.max_epochs", "2") == 0
    (last,) = tmp_path.glob("logs/version_0/checkpoints/last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] == 1  # our checkpoints hold tensors and plain values only
    assert train("fit", *data, *folders("second"), "--trainer.max_epochs", "3", "--ckpt_path", str(last)) == 0
    assert torch.load(tmp_path / "logs/version_1/checkpoints/last.ckpt", weights_only=True)["epoch"] == 2  # resumed
    ran = tmp_path / "unpickled"
    hostile = hostile_checkpoint(tmp_path / "hostile.ckpt", ran)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # not caught: its traceback shows
        train("validate", *data, *folders("third")[:2], "--trainer.logger", "false", "--ckpt_path", str(hostile))
    assert not ran.exists()


def test_a_missing_local_checkpoint_is_named_before_the_data_loads(tmp_path, capsys):
    missing = str(tmp_path / "runs/last.ckpt")
    args = ["--data.data_dir", str(tmp_path / "nothing"), "--trainer.default_root_dir", str(tmp_path)]
    assert train("fit", *args, "--ckpt_path", missing) == 1
    assert f"--ckpt_path: expected a checkpoint file, found no file at {missing!r}" in capsys.readouterr().err


def test_the_saved_config_is_redacted(tmp_path):
    """A logger's API key and a URL's password (WandbLogger's ``settings``) stay out of the config.yaml saved beside
    the run; the rest of the config is saved as given."""
    pytest.importorskip("wandb")
    secret, password = "0123456789abcdef0123456789abcdef01234567", "hunter2"
    overlay = tmp_path / "logger.yaml"
    logger = {
        "class_path": "lightning.pytorch.loggers.WandbLogger",
        "init_args": {
            "save_dir": str(tmp_path),
            "offline": True,
            "settings": {"api_key": secret, "base_url": f"https://me:{password}@wandb.example.com"},
        },
    }
    overlay.write_text(yaml.safe_dump({"trainer": {"logger": logger}}))
    args = ["--config", TINY, "--config", str(overlay), "--data.data_dir", str(tmp_path / "data")]
    cli = training_cli([*args, "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert cli.trainer.logger._wandb_init["settings"].api_key == secret  # the run itself gets the key
    (callback,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "RedactedConfig"]
    callback.setup(cli.trainer, cli.model, "fit")
    text = (tmp_path / "config.yaml").read_text()
    assert secret not in text and password not in text
    saved = yaml.safe_load(text)
    settings = saved["trainer"]["logger"]["init_args"]["settings"]
    assert (settings["api_key"], settings["base_url"]) == ("<redacted>", "https://<redacted>@wandb.example.com")
    assert saved["model"]["encoder"]["num_tokens"] == 8 and saved["data"]["init_args"]["batch_size"] == 16


CODE_RUNNERS = {"import_module", "__import__", "exec", "eval", "resolve_embedder", "instantiate", "unsafe_load",
                "instantiate_classes", "load_from_checkpoint"}  # fmt: skip
PICKLE_READERS = {("torch", "load"), ("pickle", "load"), ("pickle", "loads"), ("yaml", "load"), ("np", "load")}


@pytest.mark.parametrize("package", ["inference/app", "inference/story"])
def test_nothing_the_app_or_a_story_supplies_reaches_an_import_or_an_unpickler(package):
    """The app's text fields, uploads and an LLM's answer are data: the app and the story code call nothing that
    imports a named module, evaluates text or unpickles (uploads are safetensors, panels safe-loaded YAML)."""
    found = []
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            owner = getattr(function.value, "id", "") if isinstance(function, ast.Attribute) else ""
            loader = " ".join(ast.unparse(k.value) for k in node.keywords if k.arg == "Loader")
            safe = (owner, name) == ("yaml", "load") and "SafeLoader" in loader
            if name in CODE_RUNNERS or ((owner, name) in PICKLE_READERS and not safe):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{name}")
    assert not found, found
