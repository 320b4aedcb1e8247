"""magicnaming generate / interpolate / identity on a tiny pipeline folder and encoder folder."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from namespace import Identity
from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.inference.loading import load_encoder, load_pipeline
from namespace.testing import synthetic_face

STEPS = ["--num_inference_steps", "2", "--height", "32", "--width", "32"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from namespace.testing import tiny_name_encoder, tiny_sdxl_pipeline

    root = tmp_path_factory.mktemp("models")
    pipe = tiny_sdxl_pipeline()
    pipe.save_pretrained(root / "pipeline")
    tiny_name_encoder(pipe).save_pretrained(root / "encoder")
    for v in range(2):
        synthetic_face(1, v, 64).save(root / f"ref{v}.png")
    return root


def test_generate_writes_images_with_their_settings(folders, tmp_path):
    out = tmp_path / "out"
    refs = [str(folders / "ref0.png"), str(folders / "ref1.png")]
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    args += ["--references", json.dumps(refs), "--prompts", '["a person riding a horse", "a person"]']
    args += ["--output", str(out), "--delta", "1.5", "--seed", "3", *STEPS]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "000-00.json", "000-00.png", "001-00.json", "001-00.png", "identity.safetensors",
    ]  # fmt: skip
    settings = json.loads((out / "001-00.json").read_text())
    assert settings["prompt"] == "a person" and settings["delta"] == 1.5 and settings["seed"] == 4
    # the PNG is what the plugin makes in-process with the same settings
    naming = MagicNaming(load_pipeline(str(folders / "pipeline")), load_encoder(str(folders / "encoder")))
    identity = Identity.load(out / "identity.safetensors")
    expected = naming("a person", identity, delta=1.5, num_inference_steps=2, height=32, width=32,
                      guidance_scale=5.0, generator=torch.Generator().manual_seed(4)).images[0]  # fmt: skip
    assert Image.open(out / "001-00.png").tobytes() == expected.tobytes()


def test_identity_subcommands_then_interpolate(folders, tmp_path, capfd):
    encoder, pipeline = str(folders / "encoder"), str(folders / "pipeline")
    alice = tmp_path / "alice.safetensors"
    assert (
        main(
            [
                "identity",
                "encode",
                "--encoder",
                encoder,
                "--images",
                f'["{folders / "ref0.png"}"]',
                "--output",
                str(alice),
            ]
        )
        == 0
    )
    assert main(["identity", "sample", "--encoder", encoder, "--num", "2", "--output", str(tmp_path / "s")]) == 0
    sampled = sorted((tmp_path / "s").iterdir())
    assert [p.name for p in sampled] == ["sampled-0.safetensors", "sampled-1.safetensors"]
    mixed = tmp_path / "mix.safetensors"
    assert (
        main(
            [
                "identity",
                "mix",
                "--identities",
                json.dumps([str(alice), str(sampled[0])]),
                "--weights",
                "[1, 3]",
                "--output",
                str(mixed),
            ]
        )
        == 0
    )
    a, s, m = (Identity.load(p) for p in (alice, sampled[0], mixed))
    torch.testing.assert_close(m.embedding, 0.25 * a.embedding + 0.75 * s.embedding)
    described = tmp_path / "red.safetensors"
    args = ["identity", "from_text", "--encoder", encoder, "--pipeline", pipeline, "--description", "red hair"]
    assert main([*args, "--num_candidates", "4", "--num_clusters", "2", "--output", str(described), *STEPS]) == 0
    assert Identity.load(described).source == "text"

    grid = tmp_path / "grid.png"
    args = [
        "interpolate",
        "--encoder",
        encoder,
        "--pipeline",
        pipeline,
        "--identities",
        json.dumps([str(alice), str(sampled[1])]),
    ]
    assert main([*args, "--prompts", '["a person", "a cat"]', "--steps", "3", "--output", str(grid), *STEPS]) == 0
    assert Image.open(grid).size == (2 * 32, 3 * 32)
    assert json.loads(grid.with_suffix(".json").read_text())["rows_t"] == [0.0, 0.5, 1.0]
    lines = "".join(capfd.readouterr()).splitlines()
    assert all(line.strip() for line in lines), lines
    assert "[3/3] drawing 4 candidates, naming and clustering them ..." in lines  # identity from_text
    assert "[8/8] image 6/6: t = 1.00, prompt 2 ..." in lines  # interpolate: 3 steps × 2 prompts


def test_generate_needs_exactly_one_identity_source(folders, tmp_path, capsys):
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    assert main([*args, "--prompts", '["a person"]', "--output", str(tmp_path), *STEPS]) == 1
    assert "magicnaming generate: error: give either --references" in capsys.readouterr().err


def test_generate_prints_a_line_per_step_and_no_blank_lines(folders, tmp_path, capfd):
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    args += ["--references", str(folders / "ref0.png"), "--prompts", '["a person", "a cat"]']
    assert main([*args, "--output", str(tmp_path), *STEPS]) == 0
    captured = capfd.readouterr()  # file-descriptor level: the libraries' progress bars too
    lines = (captured.out + captured.err).splitlines()  # splits at carriage returns too, as a terminal shows them
    assert all(line.strip() for line in lines), lines
    steps = [line for line in lines if line.startswith("[")]
    assert steps == [
        f"[1/5] loading the name encoder {folders / 'encoder'} ...",
        f"[2/5] loading the pipeline {folders / 'pipeline'} ...",
        "[3/5] encoding 1 reference image(s) ...",
        "[4/5] image 1/2 ...",
        "[5/5] image 2/2 ...",
    ]
    assert lines[-1] == f"wrote 2 image(s) to {tmp_path}/"


def test_one_image_a_folder_or_a_list_of_images(folders, tmp_path):
    """A single path where a list is expected is that one image (it used to be read as a list file)."""
    faces = tmp_path / "faces"
    faces.mkdir()
    for v in range(2):
        synthetic_face(4, v, 64).save(faces / f"{v}.jpg")
    encoder = ["identity", "encode", "--encoder", str(folders / "encoder")]
    for name, images in [("one", faces / "0.jpg"), ("folder", faces), ("list", json.dumps([str(faces / "0.jpg")]))]:
        assert main([*encoder, "--images", str(images), "--output", str(tmp_path / f"{name}.safetensors")]) == 0
    one, folder, listed = (Identity.load(tmp_path / f"{name}.safetensors") for name in ("one", "folder", "list"))
    assert torch.equal(one.embedding, listed.embedding)
    model = load_encoder(str(folders / "encoder"))
    torch.testing.assert_close(folder.embedding, model.encode([faces / "0.jpg", faces / "1.jpg"]).mean(0).cpu())


def test_cheap_inputs_are_checked_before_any_model_loads(folders, tmp_path, capsys):
    """Every problem with the encoder, identity and pipeline arguments, at once, naming the option as typed."""
    wrong_width = str(Identity(torch.randn(8, 2048)).save(tmp_path / "sdxl.safetensors"))
    broken = tmp_path / "broken-pipeline"  # looks like a pipeline folder; loading it would fail on its index
    broken.mkdir()
    (broken / "model_index.json").write_text("not json")
    args = ["generate", "--prompts", "a person", "--output", str(tmp_path / "out"), *STEPS]
    args += ["--identity", wrong_width]
    assert main([*args, "--encoder", str(folders / "encoder"), "--pipeline", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"--identity: {wrong_width}: identity has width 2048, expected 80" in err
    assert "loading" not in err and "model_index" not in err  # neither model was loaded

    missing = tmp_path / "nowhere"
    assert main([*args, "--encoder", str(missing), "--pipeline", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "error: 2 problems:" in err
    assert f"--encoder: '{missing}' is not a folder (nor a Hub id of the form owner/name)" in err
    assert f"--pipeline: '{missing}' is not a folder (nor a Hub id of the form owner/name)" in err


def test_a_missing_relative_folder_is_not_taken_for_a_hub_id(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    args = ["interpolate", "--encoder", str(folders / "encoder"), "--pipeline", "models/sdxl", "--prompts", "a"]
    assert main([*args, "--identities", json.dumps([str(tmp_path / "a.safetensors")] * 2)]) == 1
    err = capsys.readouterr().err
    assert "--pipeline: 'models/sdxl' is not a folder" in err
    assert f"--identities[0]: identity file '{tmp_path / 'a.safetensors'}' does not exist" in err
    assert main(["identity", "sample", "--encoder", "models/encoder", "--output", str(tmp_path)]) == 1
    assert "--encoder: 'models/encoder' is not a folder" in capsys.readouterr().err


def zero_and_integer_identities(folder):
    """Identity files of the tiny encoder's (8, 80) that cannot be drawn: all zero, and integer."""
    header = {"format": "magicnaming-identity", "format_version": "1"}
    zero, integer = folder / "zero.safetensors", folder / "integer.safetensors"
    save_file({"name_embedding": torch.zeros(8, 80)}, zero, metadata=header)
    save_file({"name_embedding": torch.ones(8, 80, dtype=torch.int64)}, integer, metadata=header)
    return zero, integer


def test_bad_identities_and_numbers_are_refused_before_any_model_loads(folders, tmp_path, capsys):
    """An all-zero or integer identity file and a bad δ, η or seed used to fail only after the models loaded (or draw
    black images), without naming the option; now one error lists them all, as typed, before loading. The parser
    takes YAML's .nan and .inf, and 1e999, as floats."""
    zero, integer = zero_and_integer_identities(tmp_path)
    models = ["--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    args = ["generate", *models, "--prompts", '["a", "b"]', "--output", str(tmp_path / "out"), *STEPS]
    assert main([*args, "--identity", str(zero), "--eta", "-1", "--delta", ".nan", "--seed", "-1"]) == 1
    err = capsys.readouterr().err
    assert "error: 4 problems:" in err and "loading" not in err and "Traceback" not in err
    assert f"--identity: {zero}: name_embedding is all zeros, expected a name" in err
    assert "--eta: expected a finite name norm η > 0, got -1.0" in err
    assert "--delta: expected a finite name guidance δ, got nan" in err
    assert f"--seed: expected an integer from 0 to 2**64-1 (seed + k for k < 2, so at most {2**64 - 2}), got -1" in err
    assert main([*args, "--identity", str(integer), "--eta", "1e999", "--seed", str(2**64 - 1)]) == 1
    err = capsys.readouterr().err
    assert f"--identity: {integer}: name_embedding has dtype torch.int64, expected a floating-point name" in err
    assert "--eta: expected a finite name norm η > 0, got inf" in err and "--seed: expected" in err
    assert not (tmp_path / "out").exists()

    ends = json.dumps([str(zero), str(zero)])
    assert main(["interpolate", *models, "--identities", ends, "--prompts", "a", "--delta", ".inf", *STEPS]) == 1
    err = capsys.readouterr().err
    assert f"--identities[0]: {zero}: name_embedding is all zeros" in err and "--delta: expected a finite" in err
    assert "loading" not in err


def test_generate_refuses_a_used_output_folder_unless_overwrite(folders, tmp_path, capsys):
    """Images used to be written into any folder, mixed with (or over) what was there."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "007-00.png").write_bytes(b"an image of an earlier run")
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    args += ["--references", str(folders / "ref0.png"), "--prompts", "a person", "--output", str(out), *STEPS]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"--output: expected a new folder, '{out}' already exists (a non-empty folder)" in err
    assert "pass --overwrite" in err and "loading" not in err
    assert sorted(p.name for p in out.iterdir()) == ["007-00.png", "notes.txt"]
    assert main([*args, "--overwrite", "true"]) == 0
    written = ["000-00.json", "000-00.png", "identity.safetensors", "notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == written  # the earlier run's image is gone, the note stays


def test_an_oversized_reference_image_is_named_without_a_traceback(folders, tmp_path, capsys):
    """A 20000 × 20000 PNG used to end the command with PIL's DecompressionBombError traceback."""
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    args += ["--references", str(huge), "--prompts", "a person", "--output", str(tmp_path / "out"), *STEPS]
    assert main(args) == 1
    err = capsys.readouterr().err
    expected = f"error: --references[0]: '{huge}' is too large: expected at most {Image.MAX_IMAGE_PIXELS:,} pixels"
    assert expected in err and "found 400,000,000 pixels; downscale it" in err and "loading" not in err


def test_settings_are_strict_json(tmp_path):
    """A NaN setting used to be written as ``NaN``, which strict JSON readers refuse; now nothing is written."""
    from namespace.inference.commands import _write_image

    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        _write_image(image, tmp_path / "000-00.png", {"delta": float("nan")})
    assert list(tmp_path.iterdir()) == []
    _write_image(image, tmp_path / "000-00.png", {"delta": 1.5})
    assert json.loads((tmp_path / "000-00.json").read_text()) == {"delta": 1.5}
