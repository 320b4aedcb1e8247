"""Sharing encoders the usual way, offline: the record in config.json, the model card, the folder a push uploads, the
refusals of ``encoder card`` / ``encoder push`` before any network, and the record the trainer's export writes.
Nothing is uploaded: the Hub is never reached (HF_HUB_OFFLINE, set by conftest, is set again where it matters)."""

import dataclasses
import json

import pytest
import torch
import yaml

import namespace as ns
from namespace.cli import main
from namespace.encoder.model_card import BASE_MODEL, LICENCE_TODO, card_licence, model_card, with_licence

from .conftest import says

RECORD = {
    "magicnaming_version": "0.1.0.dev0",
    "training_data": {
        "path": "laioncele-demo",
        "format": "magicnaming-laioncele v1",
        "identities": 8,
        "train_identities": 6,
        "sha256": {"manifest.json": "ab" * 32, "identities.parquet": "cd" * 32},
    },
    "training": {"steps": 450, "epochs": 150.0, "metrics": {"val_heldout/top1": 0.9375}},
    "fingerprint": {"probe_names": 16, "text_side": "tiny-sdxl", "mean_norm": 12.25},
}


@pytest.fixture
def encoder(tiny_encoder):
    """The tiny encoder with a calibrated δ and a record."""
    tiny_encoder.set_statistics(dataclasses.replace(tiny_encoder.statistics, delta=1.25))
    tiny_encoder.record = json.loads(json.dumps(RECORD))
    return tiny_encoder


@pytest.fixture
def offline(monkeypatch):
    """Offline mode as huggingface_hub reads it, whatever imported it first."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_folder_saved_with_a_record_loads_back_with_it(encoder, tmp_path):
    folder = encoder.save_pretrained(tmp_path / "encoder")
    stored = json.loads((folder / "config.json").read_text())
    assert stored["format_version"] == 3 and stored["record"] == RECORD
    assert stored["statistics"] == {
        "count": int(encoder.statistics_count),
        "name_norm": float(encoder.name_norm),
        "delta": 1.25,
    }  # a summary for readers: the weights file holds the values
    loaded = ns.NameEncoder.from_pretrained(folder, load_towers=False)
    assert loaded.record == RECORD and loaded.statistics.delta == pytest.approx(1.25)
    assert ns.NameEncoder.from_pretrained(folder, load_towers=False).record is not loaded.record  # read each time
    loaded.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again/config.json").read_text())["record"] == RECORD


def test_a_version_2_folder_without_a_record_still_loads_and_gets_a_card(encoder, tmp_path):
    """Folders written before the record (format_version 2: no record, no statistics summary) load as before; the
    card reads δ and η from the weights file's scalars instead."""
    folder = encoder.save_pretrained(tmp_path / "encoder")
    config = json.loads((folder / "config.json").read_text())
    del config["record"], config["statistics"]
    config["format_version"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    loaded = ns.NameEncoder.from_pretrained(folder, load_towers=False)
    assert loaded.record == {} and loaded.statistics.delta == pytest.approx(1.25)
    for key, tensor in encoder.exported_state().items():
        assert torch.equal(loaded.exported_state()[key], tensor), key
    card = model_card(folder)
    assert says(card, "δ", "1.25") and says(card, "η", f"{float(encoder.name_norm):.6g}")
    assert says(card, "Training record") and "None recorded" in card


def test_the_card_holds_the_towers_statistics_record_fingerprint_and_the_licence_marker(encoder, tmp_path):
    folder = encoder.save_pretrained(tmp_path / "encoder")
    card = model_card(folder, repo_id="alice/tiny-encoder")
    metadata = front_matter(card)
    assert metadata["library_name"] == "magicnaming" and metadata["tags"] == ["magicnaming", "sdxl", "identity"]
    assert metadata["base_model"] == BASE_MODEL  # the SDXL base id, named once in model_card.py
    assert metadata["license"] == LICENCE_TODO == card_licence(card)
    assert 'NameEncoder.from_pretrained("alice/tiny-encoder")' in card  # the usage snippet loads this repository
    for tower in encoder.config.towers:
        assert says(card, tower.model, tower.embed_dim)
    assert "(N, D) = (8, 80)" in card and says(card, "N (name tokens)", 8) and says(card, "D (name width)", 80)
    assert says(card, "δ", "1.25") and says(card, "η", f"{float(encoder.name_norm):.6g}")
    assert says(card, "identities the statistics were fitted on", int(encoder.statistics_count))
    assert says(card, "training_data.path", "laioncele-demo") and says(card, "training_data.identities", 8)
    assert says(card, "training_data.sha256.manifest.json", "ab" * 32) and says(card, "training.steps", 450)
    assert says(card, "training.metrics.val_heldout/top1", 0.9375)
    assert says(card, "## Text-side fingerprint") and says(card, "probe_names", 16) and says(card, "mean_norm", 12.25)
    assert says(card, "## Responsible use") and "consent" in card
    filled = with_licence(card, "apache-2.0")
    assert front_matter(filled)["license"] == "apache-2.0" and LICENCE_TODO not in filled
    unfilled = card.replace("  # for you to fill in: the weights' licence", "")  # the front matter's reminder
    assert filled.replace("apache-2.0", LICENCE_TODO) == unfilled  # nothing else changed
    encoder.record = {}
    assert "## Text-side fingerprint" not in model_card(encoder.save_pretrained(tmp_path / "bare"))


def test_the_hub_folder_is_the_encoder_folder_with_its_card(encoder, tmp_path):
    """What push_to_hub uploads, written offline: it loads as the encoder, and its card has the licence."""
    folder = encoder.save_hub_folder(tmp_path / "hub", "alice/tiny-encoder", license="mit")
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert card_licence(card) == "mit" and LICENCE_TODO not in card and 'from_pretrained("alice/tiny-encoder")' in card
    loaded = ns.NameEncoder.from_pretrained(folder, load_towers=False)
    assert loaded.record == RECORD
    for key, tensor in encoder.exported_state().items():
        assert torch.equal(loaded.exported_state()[key], tensor), key


def test_a_hub_repository_loads_from_the_cache_offline_without_its_card(encoder, tmp_path, monkeypatch, offline):
    """``from_pretrained("owner/name")`` reads the Hub's cache layout (offline: the snapshot already there); the card
    is not needed, and not fetched: a snapshot without README.md loads the same."""
    from huggingface_hub import constants

    cache, commit = tmp_path / "hub-cache", "0123456789abcdef0123456789abcdef01234567"
    repository = cache / "models--alice--tiny-encoder"
    encoder.save_hub_folder(repository / "snapshots" / commit, "alice/tiny-encoder", license="mit")
    (repository / "snapshots" / commit / "README.md").unlink()
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    loaded = ns.NameEncoder.from_pretrained("alice/tiny-encoder", load_towers=False)
    assert loaded.record == RECORD and loaded.statistics.delta == pytest.approx(1.25)


def test_encoder_card_writes_the_card_into_the_folder_and_refuses_to_overwrite_it(encoder, tmp_path, capsys):
    folder = encoder.save_pretrained(tmp_path / "encoder")
    assert main(["encoder", "card", "--encoder", str(folder), "--repo_id", "alice/tiny-encoder"]) == 0
    card = (folder / "README.md").read_text()
    assert card == model_card(folder, "alice/tiny-encoder") and card_licence(card) == LICENCE_TODO
    (folder / "README.md").write_text("my edits")
    capsys.readouterr()
    assert main(["encoder", "card", "--encoder", str(folder)]) == 1
    assert says(capsys.readouterr().err, "--output", "README.md", "--overwrite")
    assert (folder / "README.md").read_text() == "my edits"  # untouched
    again = ["encoder", "card", "--encoder", str(folder), "--license", "apache-2.0", "--overwrite", "true"]
    assert main(again) == 0 and card_licence((folder / "README.md").read_text()) == "apache-2.0"
    elsewhere = tmp_path / "card.md"
    assert main(["encoder", "card", "--encoder", str(folder), "--output", str(elsewhere)]) == 0
    assert elsewhere.is_file()
    assert main(["encoder", "card", "--encoder", str(tmp_path / "missing"), "--output", str(tmp_path / "x.md")]) == 1
    assert says(capsys.readouterr().err, "--encoder", "missing", "not an encoder folder")
    assert not (tmp_path / "x.md").exists()


def test_encoder_push_refuses_before_any_network(encoder, tmp_path, capsys, offline):
    """Every problem is named at once, before the Hub is reached: a bad repository id, an unset licence (no
    --license, or a card still holding the marker), a missing folder, offline mode."""
    folder = encoder.save_pretrained(tmp_path / "encoder")
    capsys.readouterr()
    assert main(["encoder", "push", "--encoder", str(folder), "--repo_id", "not a repo"]) == 1
    error = capsys.readouterr().err
    assert says(error, "--repo_id", "owner/name", "'not a repo'") and says(error, "--license", "unset")
    assert says(error, "HF_HUB_OFFLINE")
    for bad in ("alice", "alice/bob/carol", "alice/a--b", "alice/name.git", "-alice/name"):
        assert main(["encoder", "push", "--encoder", str(folder), f"--repo_id={bad}", "--license", "mit"]) == 1
        assert says(capsys.readouterr().err, "--repo_id", repr(bad))
    assert main(["encoder", "card", "--encoder", str(folder)]) == 0  # a card still holding the marker
    assert main(["encoder", "push", "--encoder", str(folder), "--repo_id", "alice/tiny-encoder"]) == 1
    error = capsys.readouterr().err
    assert says(error, "--license", LICENCE_TODO) and "--repo_id" not in error
    assert main(["encoder", "push", "--encoder", str(tmp_path / "missing"), "--repo_id", "alice/x"]) == 1
    assert says(capsys.readouterr().err, "--encoder", "missing")
    # all set but the network: refused, naming offline mode only
    assert main(["encoder", "push", "--encoder", str(folder), "--repo_id", "alice/x", "--license", "mit"]) == 1
    error = capsys.readouterr().err
    assert says(error, "HF_HUB_OFFLINE") and "--license" not in error and "--repo_id" not in error
    with pytest.raises(ValueError, match="--repo_id") as raised:
        encoder.push_to_hub("alice", license="mit")
    assert "HF_HUB_OFFLINE" in str(raised.value)
    with pytest.raises(ValueError, match="--license: the licence is unset"):
        encoder.push_to_hub("alice/tiny-encoder")


class TestExportRecord:
    """``train export`` writes the checkpoint's record into config.json."""

    @staticmethod
    def checkpoint(path, **extra):
        from namespace.testing import tiny_name_encoder

        encoder = tiny_name_encoder(load_towers=False)
        state = {f"encoder.{name}": tensor for name, tensor in encoder.exported_state().items()}
        torch.save({"hyper_parameters": {"encoder": encoder.config.to_dict()}, "state_dict": state, **extra}, path)
        return path

    def test_the_checkpoints_record_is_written(self, tmp_path):
        from namespace.train.export import RECORD_KEY

        checkpoint = self.checkpoint(tmp_path / "run.ckpt", global_step=7, **{RECORD_KEY: RECORD})
        assert main(["train", "export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")]) == 0
        assert ns.NameEncoder.from_pretrained(tmp_path / "out", load_towers=False).record == RECORD

    def test_a_checkpoint_without_a_record_gets_its_steps_and_the_version(self, tmp_path):
        checkpoint = self.checkpoint(tmp_path / "old.ckpt", global_step=7)
        assert main(["train", "export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")]) == 0
        record = ns.NameEncoder.from_pretrained(tmp_path / "out", load_towers=False).record
        assert record == {"magicnaming_version": ns.__version__, "training": {"steps": 7}}
