"""Real 2-process CPU DDP runs (gloo) of `magicnaming train fit` for both DataModules, and kill-mid-epoch resume."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from namespace import NameEncoder, NameEncoderConfig

from .conftest import ROOT

pytestmark = pytest.mark.slow  # DDP: two processes training on the built sample
PROBES = Path(__file__).with_name("probes")
STREAMING = {"class_path": "namespace.train.streaming_data.StreamingImageDataModule", "image_size": 48}
CACHED = {"class_path": "namespace.train.cached_data.CachedFeatureDataModule"}


def write_overlay(folder, towers, data_dir, data, epochs, callbacks):
    """A YAML over configs/train/tiny.yaml: the pre-trained towers, the data module, the run's folder and callbacks."""
    data = dict(data)
    lines = ["model:", "  encoder:", "    towers:"]
    lines += [f"      - {{model: {t.model}, pretrained: {t.pretrained}, embed_dim: {t.embed_dim}}}" for t in towers]
    lines += ["data:", f"  class_path: {data.pop('class_path')}", "  init_args:", f"    data_dir: {data_dir}"]
    lines += [f"    {key}: {value}" for key, value in data.items()]
    lines += [
        "trainer:",
        f"  max_epochs: {epochs}",
        f"  check_val_every_n_epoch: {epochs}",
        "  enable_progress_bar: false",
    ]
    lines += [f"  default_root_dir: {folder}", "  logger:", "    class_path: lightning.pytorch.loggers.CSVLogger"]
    lines += ["    init_args:", f"      save_dir: {folder}", "      name: logs", "  callbacks:"]
    for class_path, arguments in callbacks:
        lines += [f"    - class_path: {class_path}", "      init_args:"]
        lines += [f"        {key}: {value}" for key, value in arguments.items()] or ["        {}"]
    path = folder / "overlay.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fit(overlay, *extra, check=True, timeout=600, subcommand="fit"):
    """Runs the CLI in a fresh process, as a user would (Lightning's DDP launcher starts the second rank)."""
    command = [sys.executable, "-m", "namespace.cli", "train", subcommand]
    command += ["--config", str(ROOT / "configs/train/tiny.yaml")]
    command += ["--config", str(overlay), *extra]
    env = {**os.environ, "PYTHONPATH": str(PROBES), "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def metrics(folder, version=None):
    paths = sorted(folder.glob("logs/version_*/metrics.csv"))
    return list(csv.DictReader((paths[version] if version is not None else paths[-1]).open()))


def last_validation(rows):
    (row,) = [row for row in rows if row.get("val_heldout/top1")][-1:]
    return {key: float(value) for key, value in row.items() if key.startswith("val") and value}


def keys_by_rank(folder, epoch, ranks):
    return [(folder / f"keys-rank{rank}-epoch{epoch}.txt").read_text().split() for rank in range(ranks)]


@pytest.mark.parametrize(
    ("data", "batch_size", "epochs"),
    [(CACHED, 8, 60), (STREAMING | {"num_workers": 2, "shuffle_buffer": 16}, 4, 25)],
    ids=["cached", "streaming"],
)
def test_two_process_ddp_reads_each_photo_once_and_matches_one_process(
    built, tiny_towers, tmp_path, data, batch_size, epochs
):
    output, manifest = built[0], built[1]
    train_photos = manifest["counts"]["images"]["train"]
    runs = {}
    for processes in (1, 2):
        folder = tmp_path / f"p{processes}"
        folder.mkdir()
        # the same global batch: 2 ranks × B or 1 process × 2B
        settings = data | {"batch_size": batch_size * (3 - processes)}
        callbacks = [("training_probes.RecordKeys", {"folder": folder})]
        if processes == 1:  # its weights are validated by 2 ranks below
            callbacks.append(("lightning.pytorch.callbacks.ModelCheckpoint", {"save_last": True}))
        overlay = write_overlay(folder, tiny_towers, output, settings, epochs, callbacks)
        fit(overlay, "--trainer.devices", str(processes), "--trainer.strategy", "ddp" if processes == 2 else "auto")
        runs[processes] = folder
    for epoch in (0, epochs - 1):
        shares = keys_by_rank(runs[2], epoch, 2)
        assert all(shares)  # both ranks trained
        keys = shares[0] + shares[1]
        assert len(keys) == len(set(keys)) == train_photos  # each photo exactly once per epoch, across the ranks
        (single,) = keys_by_rank(runs[1], epoch, 1)
        assert sorted(single) == sorted(keys)
    one, two = last_validation(metrics(runs[1])), last_validation(metrics(runs[2]))
    assert two["val/chance"] == one["val/chance"] == pytest.approx(1 / 8)
    assert two["val_heldout/cosine"] == pytest.approx(one["val_heldout/cosine"], abs=0.03)
    assert two["val_heldout/mse"] == pytest.approx(one["val_heldout/mse"], rel=0.3, abs=0.005)
    assert abs(two["val_heldout/top1"] - one["val_heldout/top1"]) <= 1 / 6 + 1e-6  # at most one held-out photo apart
    if data is CACHED:
        # the same weights validated by 2 ranks, each indexing half of the names: the 1-process metrics exactly
        (checkpoint,) = runs[1].glob("logs/version_0/checkpoints/last.ckpt")
        folder = tmp_path / "validate"
        folder.mkdir()
        overlay = write_overlay(folder, tiny_towers, output, data | {"batch_size": 3}, epochs, [])
        fit(overlay, "--trainer.devices", "2", "--trainer.strategy", "ddp", "--ckpt_path", str(checkpoint),
            subcommand="validate")  # fmt: skip
        sharded = last_validation(metrics(folder))
        assert set(sharded) == set(one)
        for name, value in one.items():
            if name.endswith(("top1", "top5", "chance")):
                assert sharded[name] == value, name
            else:
                assert sharded[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_uneven_shards_do_not_hang(built, tiny_towers, tmp_path):
    """Train shards of 16, 16 and 6 photos on 2 ranks: 22 vs 16 photos, 6 vs 4 batches of 4; the short rank pads."""
    data = STREAMING | {"batch_size": 4, "num_workers": 0}
    overlay = write_overlay(
        tmp_path, tiny_towers, built[0], data, 1, [("training_probes.RecordKeys", {"folder": tmp_path})]
    )
    fit(overlay, "--trainer.devices", "2", "--trainer.strategy", "ddp", timeout=300)
    shares = keys_by_rank(tmp_path, 0, 2)
    assert sorted(len(share) for share in shares) == [16, 22]


def test_ddp_all_reduces_the_head_gradients_and_broadcasts_nothing_per_step(built, tiny_towers, tmp_path):
    """The (M, N, D) targets are data and the encoder's statistics are the same on every rank by construction: no
    DDP strategy may resend them on every forward (a buffer broadcast of 2.75 GB per step at the paper's size)."""
    settings = CACHED | {"batch_size": 4, "num_workers": 0}
    probe = ("training_probes.CountCommunication", {"folder": tmp_path})
    fit(
        write_overlay(tmp_path, tiny_towers, built[0], settings, 2, [probe]),
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
    )
    encoder = yaml.safe_load((ROOT / "configs/train/tiny.yaml").read_text())["model"]["encoder"]
    head = NameEncoder(NameEncoderConfig.from_dict(encoder), load_towers=False).head
    gradient_bytes = 4 * sum(parameter.numel() for parameter in head.parameters())  # float32
    targets_bytes = load_file(built[0] / "name_embeddings.safetensors")["name_embeddings"].float().nbytes
    for rank in range(2):
        counts = json.loads((tmp_path / f"communication-rank{rank}.json").read_text())
        assert counts["steps"] >= 2
        assert counts["gradient_bytes"] == counts["steps"] * gradient_bytes  # the probe sees DDP's traffic
        broadcast = counts["broadcast_bytes"] / counts["steps"]
        assert counts["broadcast_bytes"] == 0, f"{broadcast:.0f} bytes broadcast per step ({targets_bytes} of targets)"


@pytest.mark.parametrize(
    "data", [CACHED | {"num_workers": 0}, STREAMING | {"num_workers": 2}], ids=["cached", "streaming"]
)
def test_killed_mid_epoch_and_resumed_follows_the_uninterrupted_losses(built, tiny_towers, tmp_path, data):
    """Checkpoint every 4 steps; SIGKILL before step 10 (mid-epoch: epochs have 10 steps); resume from last.ckpt."""
    settings = data | {"batch_size": 4}
    checkpoint = ("lightning.pytorch.callbacks.ModelCheckpoint", {"every_n_train_steps": 4, "save_last": True,
                                                                   "save_top_k": -1})  # fmt: skip
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for folder in (whole, broken):
        folder.mkdir()
    fit(write_overlay(whole, tiny_towers, built[0], settings, 3, [checkpoint]))
    killed = fit(
        write_overlay(
            broken, tiny_towers, built[0], settings, 3, [checkpoint, ("training_probes.KillAtStep", {"step": 15})]
        ),
        check=False,
    )
    assert killed.returncode == -9  # SIGKILL: nothing ran after step 14
    (last,) = broken.glob("logs/version_0/checkpoints/last.ckpt")
    fit(write_overlay(broken, tiny_towers, built[0], settings, 3, [checkpoint]), "--ckpt_path", str(last))

    def losses(rows):
        return {int(row["step"]): float(row["train/loss"]) for row in rows if row.get("train/loss")}

    uninterrupted, resumed = losses(metrics(whole)), losses(metrics(broken, version=1))
    assert min(resumed) == 12  # continues from the saved step (the checkpoint after step 12, in the second epoch)
    assert set(resumed) == {step for step in uninterrupted if step >= 12}
    for step, loss in resumed.items():
        assert loss == pytest.approx(uninterrupted[step], rel=1e-5, abs=1e-7), step
