"""The trainer on the embedded sample's feature cache: fit through the CLI, logs, checkpoints, export, bad input."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import namespace as ns
from namespace import NameEncoder
from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.testing import tiny_sdxl_pipeline
from namespace.train.laioncele import read_feature_cache, read_laioncele
from namespace.train.retrieval import ShardedNameIndex, merge_top_k

from .conftest import ROOT


def tower_overlay(towers, folder):
    """A YAML naming the pre-trained tiny towers as the encoder's (the cache was made with them)."""
    lines = ["model:", "  encoder:", "    towers:"]
    for tower in towers:
        lines.append(f"      - {{model: {tower.model}, pretrained: {tower.pretrained}, embed_dim: {tower.embed_dim}}}")
    path = folder / "towers.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(built, tiny_towers, tmp_path_factory):
    output = built[0]
    run = tmp_path_factory.mktemp("run")
    args = ["train", "fit", "--config", str(ROOT / "configs/train/tiny.yaml")]
    args += ["--config", str(tower_overlay(tiny_towers, run)), "--data.data_dir", str(output)]
    args += ["--trainer.default_root_dir", str(run)]  # the tiny recipe as it is: 150 epochs, validation every 25
    args += ["--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(run)]
    assert main(args) == 0
    return run


def read_metrics(run):
    (path,) = run.glob("logs/*/metrics.csv")
    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_fit_logs_losses_and_retrieval(fitted):
    rows = read_metrics(fitted)
    losses = [float(row["train/loss"]) for row in rows if row.get("train/loss")]
    assert losses[-1] < 0.5 * losses[0]  # it learns
    validations = [row for row in rows if row.get("val_heldout/top1")]
    assert len(validations) == 6  # every 25 epochs
    for row in validations:
        for split in ("heldout", "unseen"):
            assert 0.0 <= float(row[f"val_{split}/top1"]) <= float(row[f"val_{split}/top5"]) <= 1.0
            assert float(row[f"val_{split}/mse"]) > 0 and -1 <= float(row[f"val_{split}/cosine"]) <= 1
        assert float(row["val/chance"]) == pytest.approx(1 / 8)
    # held-out photos of train identities: their names are retrieved far above chance (1/8)
    assert float(validations[-1]["val_heldout/top1"]) >= 0.9


@pytest.mark.slow
def test_exported_encoder_loads_in_the_plugin_with_the_data_statistics(fitted, built):
    encoder = NameEncoder.from_pretrained(fitted / "encoder")
    stored = load_file(built[0] / "name_embeddings.safetensors")
    torch.testing.assert_close(encoder.statistics.mean, stored["name_mean"])
    assert encoder.statistics.norm == pytest.approx(float(stored["name_norm"]))
    naming = MagicNaming(tiny_sdxl_pipeline(), encoder)
    image = naming("a person", naming.sample(seed=0)[0], num_inference_steps=1, height=32, width=32).images[0]
    assert image.size == (32, 32)


@pytest.mark.slow
def test_export_from_a_checkpoint_equals_the_end_of_fit_export(fitted, tmp_path, capsys):
    (checkpoint,) = fitted.glob("logs/*/checkpoints/last.ckpt")
    assert main(["train", "export", "--checkpoint", str(checkpoint), "--output", str(tmp_path)]) == 0
    delta = NameEncoder.from_pretrained(tmp_path, load_towers=False).statistics.delta
    assert f"calibrated name guidance delta = {delta:.4f}" in capsys.readouterr().out
    assert main(["encoder", "info", "--path", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["delta"] == pytest.approx(delta)
    first, second = load_file(fitted / "encoder/model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads(
        (fitted / "encoder/config.json").read_text()
    )


@pytest.mark.slow
def test_the_exported_folder_records_its_data_and_run(fitted, built, tmp_path):
    """The end-of-fit folder's record names the LaionCele it read (path, identities, hashes of its manifest and
    identity table), the steps, epochs and last validation metrics; ``train export`` of last.ckpt writes the same."""
    import hashlib

    import pyarrow.parquet as pq

    data = built[0]
    record = ns.NameEncoder.from_pretrained(fitted / "encoder", load_towers=False).record
    identities = pq.read_table(data / "identities.parquet").to_pylist()
    assert record["magicnaming_version"] == ns.__version__
    assert record["training_data"]["path"] == str(data)
    assert record["training_data"]["identities"] == len(identities)
    assert record["training_data"]["train_identities"] == sum(row["split"] == "train" for row in identities)
    for name in ("manifest.json", "identities.parquet"):
        assert record["training_data"]["sha256"][name] == hashlib.sha256((data / name).read_bytes()).hexdigest()
    (checkpoint,) = fitted.glob("logs/*/checkpoints/last.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    rows = read_metrics(fitted)
    epochs = max(int(row["epoch"]) for row in rows) + 1
    assert record["training"]["steps"] == state["global_step"] > 0 and record["training"]["epochs"] == epochs
    last = [row for row in rows if row.get("val_heldout/top1")][-1]
    assert record["training"]["metrics"]["val_heldout/top1"] == pytest.approx(float(last["val_heldout/top1"]))
    assert main(["train", "export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "exported")]) == 0
    assert ns.NameEncoder.from_pretrained(tmp_path / "exported", load_towers=False).record == record


@pytest.mark.slow
def test_delta_is_calibrated_on_held_out_photos_and_gives_predictions_the_targets_spread(fitted, built):
    """MSE shrinks predictions towards F_mean; the exported δ (eq. 4) undoes it on the held-out photos."""
    encoder = NameEncoder.from_pretrained(fitted / "encoder", load_towers=False)
    delta = encoder.statistics.delta
    logged = [float(row["val_heldout/delta"]) for row in read_metrics(fitted) if row.get("val_heldout/delta")]
    assert len(logged) == 6 and delta == pytest.approx(logged[-1], rel=1e-6)  # the last validation's δ
    assert delta > 1.05
    data = read_laioncele(built[0], encoder.config.num_tokens, encoder.config.width)
    cache = read_feature_cache(data, encoder.config.feature_dim)
    heldout = cache.rows("heldout")
    with torch.no_grad():
        predicted = encoder(cache.gather(heldout))  # (B, N, D)
    targets = data.names[cache.name_rows[heldout]].float()
    mean = encoder.statistics.mean

    def spread(names):
        return float((names - mean).square().sum().sqrt())

    assert spread(predicted) < spread(targets) / 1.05
    assert spread(ns.guide(predicted, mean, delta)) == pytest.approx(spread(targets), rel=1e-4)


@pytest.mark.slow
def test_a_non_interactive_fit_logs_each_info_line_once_and_prints_a_line_per_epoch(built, tiny_towers, tmp_path):
    """`magicnaming train fit` into a log (stdout and stderr not terminals), in a process whose root logger has a
    handler before Lightning is imported (as after the demo's earlier stages, or a user's basicConfig)."""
    epochs = 8
    args = ["train", "fit", "--config", str(ROOT / "configs/train/tiny.yaml")]
    args += ["--config", str(tower_overlay(tiny_towers, tmp_path)), "--data.data_dir", str(built[0])]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]
    args += ["--trainer.max_epochs", str(epochs), "--trainer.check_val_every_n_epoch", "4"]
    program = "import logging, sys; logging.basicConfig(); from namespace.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for text in (result.stdout, result.stderr) for line in re.split(r"[\r\n]+", text) if line.strip()]
    logged = (tmp_path / "lightning.log").read_text().splitlines()
    assert f"Lightning's messages: {tmp_path / 'lightning.log'}" in lines
    for message in ("Seed set to 0", "GPU available:", "Trainable params", "`Trainer.fit` stopped"):  # once each
        assert sum(message in line for line in logged) == 1, [line for line in logged if message in line]
        assert not [line for line in lines if message in line]  # and not on the terminal
    assert not [line for line in lines if "args parameter" in line or "is deprecated" in line]  # no advice to us
    frames = [line for line in lines if re.search(r"^\s*(Epoch|Validation|Sanity Checking)\b|it/s|%\|", line)]
    assert not frames, frames[:5]  # TQDM's or Rich's bar, redrawn into the log
    epoch_lines = [line for line in lines if re.match(rf"epoch \d+/{epochs}: done in", line)]
    assert len(epoch_lines) == epochs, epoch_lines
    assert "val_heldout/top1" in epoch_lines[3] and "val_heldout/top1" not in epoch_lines[4]


class TestBadData:
    def fit(self, data_dir, run):
        args = ["train", "fit", "--config", str(ROOT / "configs/train/tiny.yaml"), "--data.data_dir", str(data_dir)]
        # the tiny towers are random here: these tests stop before training
        args += ["--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run), "--trainer.logger", "false"]
        args += ["--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false"]
        return main(args)

    def copy(self, built, tmp_path):
        data = tmp_path / "data"
        shutil.copytree(built[0], data, ignore=shutil.ignore_patterns("work"))
        return data

    @pytest.mark.slow
    def test_another_format_version(self, built, tmp_path, capsys):
        data = self.copy(built, tmp_path)
        manifest = json.loads((data / "manifest.json").read_text())
        manifest["format_version"] = 7
        (data / "manifest.json").write_text(json.dumps(manifest))
        assert self.fit(data, tmp_path) == 1
        assert "format_version 7; this version of magicnaming reads version 1" in capsys.readouterr().err

    @pytest.mark.slow
    def test_another_width(self, built, tmp_path, capsys):
        data = self.copy(built, tmp_path)
        tensors = load_file(data / "name_embeddings.safetensors")
        tensors["name_embeddings"] = torch.zeros(tensors["name_embeddings"].shape[0], 8, 64)
        save_file(tensors, data / "name_embeddings.safetensors")
        assert self.fit(data, tmp_path) == 1
        assert "holds names of shape (N, D) = (8, 64), but the encoder predicts (8, 80)" in capsys.readouterr().err

    @pytest.mark.slow
    def test_misaligned_feature_cache(self, built, tmp_path, capsys):
        data = self.copy(built, tmp_path)
        array = np.load(data / "features/tower_1.npy")
        np.save(data / "features/tower_1.npy", array[:-1])
        assert self.fit(data, tmp_path) == 1
        assert "the feature cache is not aligned with its keys" in capsys.readouterr().err

    def test_missing_directory(self, tmp_path, capsys):
        assert self.fit(tmp_path / "nothing", tmp_path) == 1
        assert "has no manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("world", [2, 3, 5])
def test_the_sharded_name_index_merged_equals_one_index_of_all_names(world):
    """Rank r of W indexes names r, r + W, ...; each rank's top-k of every query, merged, is the exact top-k of one
    index of all names (ties to the lower row), as validation under DDP needs."""
    generator = torch.Generator().manual_seed(0)
    names = torch.randn(23, 2, 6, generator=generator).half()  # (M, N, D), stored fp16
    names[7] = names[3]  # a tie: the lower row wins in both
    queries = torch.randn(9, 12, generator=generator)  # (T, N·D)
    queries[0] = names[3].flatten().float()
    expected = ShardedNameIndex(names).search(queries, 5)  # one process: all names in one index
    shards = [ShardedNameIndex(names, rank, world) for rank in range(world)]
    assert sorted(row for shard in shards for row in shard.rows.tolist()) == list(range(23))  # each name once
    normalised = torch.nn.functional.normalize(queries, dim=1)
    scores, rows = zip(*(shard._search_shard(normalised, 5) for shard in shards), strict=True)
    merged = merge_top_k(torch.stack(scores), torch.stack(rows), 5)  # (T, 5)
    assert torch.equal(merged, expected)
    assert expected[0, :2].tolist() == [3, 7]  # the query equal to name 3 finds it first, its copy second
    similarity = normalised @ torch.nn.functional.normalize(names.flatten(1).float(), dim=1).T  # (T, M) brute force
    torch.testing.assert_close(similarity.gather(1, expected), similarity.topk(5).values)  # the true top 5, in order


class TestExportWrites:
    """``train export``: an existing folder is refused without --overwrite, and a killed export leaves nothing."""

    @staticmethod
    def checkpoint(path, seed):
        """A checkpoint as ``NameEncoderModule`` writes it (its encoder's config and ``encoder.*`` weights)."""
        from namespace.testing import tiny_name_encoder

        encoder = tiny_name_encoder(seed=seed, load_towers=False)
        state = {f"encoder.{name}": tensor for name, tensor in encoder.exported_state().items()}
        torch.save({"hyper_parameters": {"encoder": encoder.config.to_dict()}, "state_dict": state}, path)
        return path, encoder.exported_state()

    @staticmethod
    def same_weights(folder, expected):
        loaded = NameEncoder.from_pretrained(folder, load_towers=False).exported_state()
        return loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)

    def test_an_existing_folder_is_refused_then_overwritten_whole(self, tmp_path, capsys):
        first, first_weights = self.checkpoint(tmp_path / "first.ckpt", seed=0)
        second, second_weights = self.checkpoint(tmp_path / "second.ckpt", seed=1)
        output = tmp_path / "encoder"
        assert main(["train", "export", "--checkpoint", str(first), "--output", str(output)]) == 0
        (output / "notes.txt").write_text("mine")
        again = ["train", "export", "--checkpoint", str(second), "--output", str(output)]
        capsys.readouterr()
        assert main(again) == 1
        error = capsys.readouterr().err
        assert f"--output: expected a new folder, {str(output)!r} already exists (a non-empty folder)" in error
        assert "--overwrite" in error and self.same_weights(output, first_weights)  # untouched
        assert main([*again, "--overwrite", "true"]) == 0
        assert self.same_weights(output, second_weights) and not (output / "notes.txt").exists()  # replaced whole

    @pytest.mark.parametrize("existing", [False, True])
    def test_a_killed_export_leaves_no_folder_that_loads_and_no_partial_files(self, existing, tmp_path, monkeypatch):
        from pathlib import Path

        from namespace.train.export import export

        first, first_weights = self.checkpoint(tmp_path / "first.ckpt", seed=0)
        second, _ = self.checkpoint(tmp_path / "second.ckpt", seed=1)
        output = tmp_path / "out" / "encoder"
        output.parent.mkdir()
        if existing:
            export(first, output)
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

        class Killed(BaseException):
            pass

        def killed_in_the_config(self, text, *args, **kwargs):  # the weights are written, half the config is
            if self.name == "config.json" or self.name.startswith(".config.json.tmp"):  # in place or temporary
                write_text(self, text[: len(text) // 2])
                raise Killed
            return write_text(self, text, *args, **kwargs)

        write_text = Path.write_text
        monkeypatch.setattr(Path, "write_text", killed_in_the_config)
        with pytest.raises(Killed):
            export(second, output, overwrite=True)
        monkeypatch.undo()
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no partial file anywhere
        if existing:
            assert self.same_weights(output, first_weights)  # the previous export, whole
        else:
            assert not output.exists()
