"""The name-space fingerprint (``namespace.fingerprint``): what the tiny SDXL's text encoders make of the probe names,
the drift of other text encoders from it, the plugin's warning, and the way it travels from the targets stage through
the LaionCele directory into an encoder's record."""

import copy
import json
import warnings
from types import SimpleNamespace

import pyarrow as pa
import pytest
import torch

import namespace as ns
from namespace.fingerprint import DRIFT_THRESHOLD, PROBE_NAMES, drift, fingerprint
from namespace.inference import MagicNaming
from namespace.laioncele import read_fingerprint, write_identities, write_manifest, write_name_embeddings
from namespace.testing import tiny_sdxl_pipeline

from .conftest import says


def perturbed(pipe, scale: float, seed: int = 0):
    """A copy of ``pipe`` whose text encoders' weights are multiplied by (1 + ``scale`` · seeded normal noise)."""
    pipe = copy.deepcopy(pipe)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for encoder in (pipe.text_encoder, pipe.text_encoder_2):
            for weight in encoder.parameters():
                weight.mul_(1 + scale * torch.randn(weight.shape, generator=generator))
    return pipe


@pytest.fixture(scope="module")
def recorded(tiny_pipe):
    return fingerprint(tiny_pipe)


@pytest.fixture(scope="module")
def swapped():
    """A freshly seeded text side of the same shape (its UNet and VAE too, unused)."""
    return tiny_sdxl_pipeline(seed=1)


@pytest.fixture
def fingerprinted(tiny_encoder, recorded):
    """The tiny encoder, its record holding the tiny pipeline's fingerprint."""
    tiny_encoder.record = {"fingerprint": json.loads(json.dumps(recorded))}
    return tiny_encoder


def construct(pipe, encoder) -> tuple[MagicNaming, list[str]]:
    """``MagicNaming(pipe, encoder)`` and the messages of the UserWarnings its construction gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        naming = MagicNaming(pipe, encoder)
    return naming, [str(warning.message) for warning in caught if issubclass(warning.category, UserWarning)]


def test_a_fingerprint_is_small_plain_json_and_the_same_each_time(tiny_pipe, recorded):
    text = json.dumps(recorded)
    assert len(text) < 8000 and json.loads(text) == recorded
    assert recorded["probes"] == list(PROBE_NAMES) and len(PROBE_NAMES) == 16
    assert (recorded["num_tokens"], recorded["width"], recorded["text_side"]) == (8, 80, "sdxl")
    assert [len(row) for row in recorded["vectors"]] == [recorded["dims"]] * 16
    assert fingerprint(tiny_sdxl_pipeline()) == recorded  # a pipeline built again: the same numbers
    assert drift(recorded, recorded) == 0 and drift(recorded, tiny_pipe) == 0


def test_the_drift_separates_rounding_from_perturbed_and_swapped_text_encoders(tiny_pipe, recorded, swapped):
    """The figures of docs/plugin.md (tolerances of a few times around them)."""
    bfloat16 = drift(recorded, copy.deepcopy(tiny_pipe).to(torch.bfloat16))
    small, large = drift(recorded, perturbed(tiny_pipe, 1e-3)), drift(recorded, perturbed(tiny_pipe, 0.1))
    fresh = drift(recorded, swapped)
    assert 0 < small < bfloat16 < 2e-4 < 100 * bfloat16 < DRIFT_THRESHOLD  # 1e-3 noise: less than bfloat16 rounding
    assert DRIFT_THRESHOLD < 0.02 < large < 0.2 < 0.5 < fresh < 1.5


def test_drift_refuses_fingerprints_made_differently(tiny_pipe, recorded):
    with pytest.raises(ValueError, match="num_tokens 8 ≠ 4"):
        drift(recorded, fingerprint(tiny_pipe, num_tokens=4))
    with pytest.raises(ValueError, match="recorded fingerprint: version 99"):
        drift({**recorded, "version": 99}, tiny_pipe)
    with pytest.raises(ValueError, match="vectors: expected 16 rows of 32 numbers"):
        drift({**recorded, "vectors": recorded["vectors"][:3]}, tiny_pipe)


def test_the_same_text_encoders_give_no_warning(tiny_pipe, fingerprinted):
    naming, messages = construct(tiny_pipe, fingerprinted)
    assert naming.text_side_drift == 0 and messages == []


def test_text_encoders_in_bfloat16_give_no_warning(tiny_pipe, fingerprinted):
    naming, messages = construct(copy.deepcopy(tiny_pipe).to(torch.bfloat16), fingerprinted)
    assert 0 < naming.text_side_drift < DRIFT_THRESHOLD and not [m for m in messages if "drift" in m]


def test_a_perturbed_text_encoder_is_warned_with_its_drift(tiny_pipe, fingerprinted):
    pipe = perturbed(tiny_pipe, 0.1)
    naming, messages = construct(pipe, fingerprinted)
    figure = naming.text_side_drift
    assert figure > DRIFT_THRESHOLD
    assert says("\n".join(messages), "text encoders differ", f"drift {figure:.3g} > {DRIFT_THRESHOLD:g}", "people")
    again, _ = construct(pipe, fingerprinted)
    assert again.text_side_drift == figure  # deterministic: the same figure from a second construction


def test_a_swapped_text_encoder_is_warned_more_strongly(tiny_pipe, fingerprinted, swapped):
    perturbed_naming, _ = construct(perturbed(tiny_pipe, 0.1), fingerprinted)
    naming, messages = construct(swapped, fingerprinted)
    assert naming.text_side_drift > 5 * perturbed_naming.text_side_drift
    assert says("\n".join(messages), f"drift {naming.text_side_drift:.3g} >")


def test_an_encoder_without_a_fingerprint_is_not_measured(tiny_encoder, swapped):
    assert tiny_encoder.record == {}
    naming, messages = construct(swapped, tiny_encoder)
    assert naming.text_side_drift is None and messages == []


def test_the_refiner_takes_part_of_each_name_and_is_not_measured(fingerprinted):
    from namespace.synthetic.pipeline import tiny_sdxl_refiner_pipeline

    naming, messages = construct(tiny_sdxl_refiner_pipeline(seed=1), fingerprinted)
    assert naming.text_side_drift is None and messages == []


def test_an_unreadable_fingerprint_is_warned_not_compared(tiny_pipe, fingerprinted, recorded):
    fingerprinted.record = {"fingerprint": {**recorded, "version": 99}}
    naming, messages = construct(tiny_pipe, fingerprinted)
    assert naming.text_side_drift is None and says("\n".join(messages), "not compared", "version 99")


def test_the_targets_stage_writes_it_and_assemble_keeps_it(tmp_path, recorded):
    """``compute_targets`` on the tiny pipeline: the targets' metadata holds its fingerprint; the assemble stage's
    ``name_embeddings.safetensors`` keeps it (its own function, on the targets alone)."""
    from namespace.data_pipeline.assemble import AssembleConfig, _write_identities_and_targets
    from namespace.data_pipeline.targets import TargetsConfig, compute_targets

    names = {3: "Ada Lovelace", 5: "Alan Turing", 8: "Grace Hopper"}
    targets, laioncele = tmp_path / "targets", tmp_path / "laioncele"
    targets.mkdir()
    laioncele.mkdir()
    compute_targets(list(names), list(names.values()), "tiny", TargetsConfig(), targets)
    assert read_fingerprint(targets / "targets.safetensors") == recorded
    splits, counts = {3: "train", 5: "train", 8: "val"}, dict.fromkeys(names, 5)
    _write_identities_and_targets(
        list(names), names, splits, counts, targets / "targets.safetensors", AssembleConfig(pca_rank=1), laioncele
    )
    assert read_fingerprint(laioncele) == recorded


@pytest.mark.slow
def test_a_built_laioncele_holds_the_fingerprint_of_its_pipeline(built, tiny_pipe):
    """The whole build (configs/data/demo.yaml, pipeline ``tiny``): targets → assemble → the LaionCele directory."""
    output, _, _, config = built
    stored = read_fingerprint(output)
    assert config.pipeline == "tiny" and stored["num_tokens"] == config.targets.num_tokens
    assert drift(stored, tiny_pipe) == 0


def laioncele_folder(folder, fingerprint_text: str | None):
    """A LaionCele directory's small files: a manifest, two identities, their names (with a fingerprint if given)."""
    folder.mkdir()
    write_manifest(folder, {"format": "magicnaming-laioncele", "format_version": 1, "counts": {"images": 10}})
    write_identities(folder, pa.table({"identity_id": [1, 2], "name": ["a", "b"], "split": ["train", "val"]}))
    metadata = {} if fingerprint_text is None else {"fingerprint": fingerprint_text}
    write_name_embeddings(folder, {"name_embeddings": torch.zeros(2, 8, 80)}, metadata)
    return SimpleNamespace(folder=folder, manifest={"format": "magicnaming-laioncele"}, identity_split={1: "train"})


def trainer_of(data) -> SimpleNamespace:
    """What ``training_record`` reads of a Lightning trainer, for a datamodule that read ``data``."""
    progress = SimpleNamespace(batch_progress=SimpleNamespace(total=SimpleNamespace(completed=4)))
    return SimpleNamespace(
        datamodule=SimpleNamespace(data=data),
        global_step=4,
        fit_loop=SimpleNamespace(epoch_loop=progress),
        num_training_batches=2,
        callback_metrics={},
    )


def test_the_training_record_copies_the_data_sets_fingerprint_into_the_encoder(tmp_path, tiny_pipe, recorded):
    """The record (what checkpoints and the exported folder hold) takes the LaionCele's fingerprint; the saved
    folder carries it to the plugin (drift 0 on the same pipeline) and to the model card (its facts, not 512
    numbers). A data set without one: nothing recorded."""
    from namespace.encoder.model_card import model_card
    from namespace.testing import tiny_name_encoder
    from namespace.train.export import training_record

    record = training_record(trainer_of(laioncele_folder(tmp_path / "data", json.dumps(recorded))))
    assert record["fingerprint"] == recorded and record["training"]["steps"] == 4
    encoder = tiny_name_encoder(tiny_pipe)
    encoder.record = record
    folder = encoder.save_pretrained(tmp_path / "encoder")
    loaded = ns.NameEncoder.from_pretrained(folder, load_towers=False)
    assert loaded.record["fingerprint"] == recorded
    naming, messages = construct(tiny_pipe, loaded)
    assert naming.text_side_drift == 0 and messages == []
    card = model_card(folder)
    assert says(card, "## Text-side fingerprint") and says(card, "probes", "Albert Einstein")
    assert not says(card, "vectors") and str(recorded["vectors"][0][0]) not in card

    old = training_record(trainer_of(laioncele_folder(tmp_path / "old", None)))
    assert "fingerprint" not in old and "training_data" in old
