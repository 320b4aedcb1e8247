"""The one rule of every command that writes: an existing output is refused, naming the argument, unless
``--overwrite true``; the refusal comes before any model loads. Identity files and ``magicnaming likeness``."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from namespace import Identity
from namespace.cli import main


@pytest.fixture
def encoder(tiny_models, tmp_path):
    """A copy of the session's saved tiny encoder (a test breaks its weights)."""
    return Path(shutil.copytree(tiny_models.encoder, tmp_path / "encoder"))


def photo(tmp_path, color: str):
    path = tmp_path / f"{color}.png"
    Image.new("RGB", (48, 64), color).save(path)
    return str(path)


def refused(capsys, argv: list[str], path) -> str:
    """Runs a command that must be refused for its existing ``--output`` ``path``; returns the error."""
    capsys.readouterr()
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert f"--output: expected a new file, {str(path)!r} already exists (a file)" in error, error
    assert "--overwrite" in error
    return error


def test_identity_encode_refuses_an_existing_output_then_overwrites_it(encoder, tmp_path, capsys):
    output = tmp_path / "alice.safetensors"
    encode = ["identity", "encode", "--encoder", str(encoder), "--output", str(output), "--check_faces", "false"]
    assert main([*encode, "--images", photo(tmp_path, "red"), "--label", "first"]) == 0
    written = output.read_bytes()
    again = [*encode, "--images", photo(tmp_path, "navy"), "--label", "second"]
    refused(capsys, again, output)
    assert output.read_bytes() == written
    assert main([*again, "--overwrite", "true"]) == 0
    assert Identity.load(output).label == "second"


def test_the_refusal_comes_before_the_encoder_loads(encoder, tmp_path, capsys):
    output = tmp_path / "alice.safetensors"
    output.write_bytes(b"someone else's file")
    (encoder / "model.safetensors").write_bytes(b"\x00" * 8)  # loading the weights would fail
    argv = ["identity", "encode", "--encoder", str(encoder), "--images", photo(tmp_path, "red")]
    error = refused(capsys, [*argv, "--output", str(output)], output)
    assert "model.safetensors" not in error and output.read_bytes() == b"someone else's file"


def test_identity_mix_refuses_an_existing_output_then_overwrites_it(tmp_path, capsys):
    parts = [str(Identity(torch.full((8, 16), value), f"p{value}").save(tmp_path / f"p{value}.safetensors"))
             for value in (1.0, 2.0)]  # fmt: skip
    output = tmp_path / "mixed.safetensors"
    mix = ["identity", "mix", "--identities", json.dumps(parts), "--output", str(output)]
    assert main([*mix, "--weights", "[1, 1]"]) == 0
    refused(capsys, [*mix, "--weights", "[1, 3]"], output)
    assert Identity.load(output).embedding.mean() == pytest.approx(1.5)  # untouched
    assert main([*mix, "--weights", "[1, 3]", "--overwrite", "true"]) == 0
    assert Identity.load(output).embedding.mean() == pytest.approx(1.75)


def test_identity_sample_refuses_each_existing_file(encoder, tmp_path, capsys):
    folder = tmp_path / "sampled"
    sample = ["identity", "sample", "--encoder", str(encoder), "--output", str(folder), "--num", "2"]
    assert main(sample) == 0
    first = (folder / "sampled-1.safetensors").read_bytes()
    refused(capsys, [*sample, "--seed", "1"], folder / "sampled-0.safetensors")
    assert (folder / "sampled-1.safetensors").read_bytes() == first
    assert main([*sample, "--label", "other"]) == 0  # other files in the same folder: nothing to refuse
    assert main([*sample, "--seed", "1", "--overwrite", "true"]) == 0
    assert (folder / "sampled-1.safetensors").read_bytes() != first


def test_identity_from_text_refuses_before_the_pipeline_loads(encoder, tmp_path, capsys):
    output = tmp_path / "character.safetensors"
    output.write_bytes(b"kept")
    argv = ["identity", "from_text", "--encoder", str(encoder), "--pipeline", str(tmp_path / "no-pipeline")]
    error = refused(capsys, [*argv, "--description", "a tall man", "--output", str(output)], output)
    assert "--pipeline" in error and output.read_bytes() == b"kept"  # every problem at once, nothing loaded


def test_likeness_refuses_an_existing_output_before_anything_loads(tmp_path):
    from namespace.inference.likeness import likeness

    world, laioncele, output = tmp_path / "world", tmp_path / "laioncele", tmp_path / "likeness"
    for folder, marker in ((world, "world.json"), (laioncele, "manifest.json")):
        folder.mkdir()
        (folder / marker).write_text("{}")  # enough for the cheap checks; loading would fail on them
    output.mkdir()
    (output / "likeness.json").write_text('{"likeness_heldout": 0.9}')
    with pytest.raises(ValueError, match=r"--output: expected a new folder, .* already exists \(a non-empty folder\)"):
        likeness(world, tmp_path / "encoder", laioncele, output)
    assert (output / "likeness.json").read_text() == '{"likeness_heldout": 0.9}'
