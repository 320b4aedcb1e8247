"""magicnaming generate / interpolate / identity on a tiny pipeline folder and encoder folder."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from namespace import Identity
from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.model_names import load_encoder, load_pipeline
from namespace.testing import synthetic_face

from .conftest import says

STEPS = ["--num_inference_steps", "2", "--height", "32", "--width", "32"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """A folder with two photos of one person: ref0.png, ref1.png."""
    root = tmp_path_factory.mktemp("references")
    for v in range(2):
        synthetic_face(1, v, 64).save(root / f"ref{v}.png")
    return root


def test_generate_writes_images_with_their_settings(tiny_models, references, tmp_path):
    out = tmp_path / "out"
    refs = [str(references / "ref0.png"), str(references / "ref1.png")]
    args = ["generate", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    args += ["--references", json.dumps(refs), "--prompts", '["a person riding a horse", "a person"]']
    args += ["--output", str(out), "--delta", "1.5", "--seed", "3", *STEPS]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "000-00.json", "000-00.png", "001-00.json", "001-00.png", "identity.safetensors",
    ]  # fmt: skip
    settings = json.loads((out / "001-00.json").read_text())
    assert settings["prompt"] == "a person" and settings["delta"] == 1.5 and settings["seed"] == 4
    # the PNG is what the plugin makes in-process with the same settings
    naming = MagicNaming(load_pipeline(str(tiny_models.pipeline)), load_encoder(str(tiny_models.encoder)))
    identity = Identity.load(out / "identity.safetensors")
    expected = naming("a person", identity, delta=1.5, num_inference_steps=2, height=32, width=32,
                      guidance_scale=5.0, generator=torch.Generator().manual_seed(4)).images[0]  # fmt: skip
    assert Image.open(out / "001-00.png").tobytes() == expected.tobytes()


@pytest.mark.slow
def test_identity_subcommands_then_interpolate(tiny_models, references, tmp_path, capfd):
    encoder, pipeline = str(tiny_models.encoder), str(tiny_models.pipeline)
    alice = tmp_path / "alice.safetensors"
    assert (
        main(
            [
                "identity",
                "encode",
                "--encoder",
                encoder,
                "--images",
                f'["{references / "ref0.png"}"]',
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
    assert says("\n".join(lines), "[3/3]", "4 candidates")  # identity from_text
    assert says("\n".join(lines), "[8/8]", "6/6", "1.00", "prompt 2")  # interpolate: 3 steps × 2 prompts


def test_generate_needs_exactly_one_identity_source(tiny_models, tmp_path, capsys):
    args = ["generate", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    assert main([*args, "--prompts", '["a person"]', "--output", str(tmp_path), *STEPS]) == 1
    assert says(capsys.readouterr().err, "error", "--references")  # the missing source, named


def test_generate_prints_a_line_per_step_and_no_blank_lines(tiny_models, references, tmp_path, capfd):
    args = ["generate", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    args += ["--references", str(references / "ref0.png"), "--prompts", '["a person", "a cat"]']
    assert main([*args, "--output", str(tmp_path), *STEPS]) == 0
    captured = capfd.readouterr()  # file-descriptor level: the libraries' progress bars too
    lines = (captured.out + captured.err).splitlines()  # splits at carriage returns too, as a terminal shows them
    assert all(line.strip() for line in lines), lines
    steps = [line for line in lines if line.startswith("[")]
    assert [line.split("]")[0] for line in steps] == [f"[{k}/5" for k in range(1, 6)]  # numbered, in order
    assert str(tiny_models.encoder) in steps[0] and str(tiny_models.pipeline) in steps[1]  # what is loaded
    assert "1 reference" in steps[2] and "1/2" in steps[3] and "2/2" in steps[4]  # the counts
    assert "2 image" in lines[-1] and str(tmp_path) in lines[-1]  # the last line: how many, where


def test_one_image_a_folder_or_a_list_of_images(tiny_models, tmp_path):
    """A single path where a list is expected is that one image (it used to be read as a list file)."""
    faces = tmp_path / "faces"
    faces.mkdir()
    for v in range(2):
        synthetic_face(4, v, 64).save(faces / f"{v}.jpg")
    encoder = ["identity", "encode", "--encoder", str(tiny_models.encoder)]
    for name, images in [("one", faces / "0.jpg"), ("folder", faces), ("list", json.dumps([str(faces / "0.jpg")]))]:
        assert main([*encoder, "--images", str(images), "--output", str(tmp_path / f"{name}.safetensors")]) == 0
    one, folder, listed = (Identity.load(tmp_path / f"{name}.safetensors") for name in ("one", "folder", "list"))
    assert torch.equal(one.embedding, listed.embedding)
    model = load_encoder(str(tiny_models.encoder))
    torch.testing.assert_close(folder.embedding, model.encode([faces / "0.jpg", faces / "1.jpg"]).mean(0).cpu())


def test_cheap_inputs_are_checked_before_any_model_loads(tiny_models, tmp_path, capsys):
    """Every problem with the encoder, identity and pipeline arguments, at once, naming the option as typed."""
    wrong_width = str(Identity(torch.randn(8, 2048)).save(tmp_path / "sdxl.safetensors"))
    broken = tmp_path / "broken-pipeline"  # looks like a pipeline folder; loading it would fail on its index
    broken.mkdir()
    (broken / "model_index.json").write_text("not json")
    args = ["generate", "--prompts", "a person", "--output", str(tmp_path / "out"), *STEPS]
    args += ["--identity", wrong_width]
    assert main([*args, "--encoder", str(tiny_models.encoder), "--pipeline", str(broken)]) == 1
    err = capsys.readouterr().err
    assert says(err, "--identity", wrong_width, "2048", "80")  # the argument, the file, the widths
    assert "loading" not in err and "model_index" not in err  # neither model was loaded

    missing = tmp_path / "nowhere"
    assert main([*args, "--encoder", str(missing), "--pipeline", str(missing)]) == 1
    err = capsys.readouterr().err
    assert says(err, "2 problems")
    assert says(err, "--encoder", missing, "not a folder") and says(err, "--pipeline", missing, "not a folder")


def test_a_missing_relative_folder_is_not_taken_for_a_hub_id(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    args = ["interpolate", "--encoder", str(tiny_models.encoder), "--pipeline", "models/sdxl", "--prompts", "a"]
    assert main([*args, "--identities", json.dumps([str(tmp_path / "a.safetensors")] * 2)]) == 1
    err = capsys.readouterr().err
    assert says(err, "--pipeline", "models/sdxl", "not a folder")
    assert says(err, "--identities[0]", tmp_path / "a.safetensors", "not exist")
    assert main(["identity", "sample", "--encoder", "models/encoder", "--output", str(tmp_path)]) == 1
    assert says(capsys.readouterr().err, "--encoder", "models/encoder", "not a folder")


def zero_and_integer_identities(folder):
    """Identity files of the tiny encoder's (8, 80) that cannot be drawn: all zero, and integer."""
    header = {"format": "magicnaming-identity", "format_version": "1"}
    zero, integer = folder / "zero.safetensors", folder / "integer.safetensors"
    save_file({"name_embedding": torch.zeros(8, 80)}, zero, metadata=header)
    save_file({"name_embedding": torch.ones(8, 80, dtype=torch.int64)}, integer, metadata=header)
    return zero, integer


def test_bad_identities_and_numbers_are_refused_before_any_model_loads(tiny_models, tmp_path, capsys):
    """An all-zero or integer identity file and a bad δ, η or seed used to fail only after the models loaded (or draw
    black images), without naming the option; now one error lists them all, as typed, before loading. The parser
    takes YAML's .nan and .inf, and 1e999, as floats."""
    zero, integer = zero_and_integer_identities(tmp_path)
    models = ["--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    args = ["generate", *models, "--prompts", '["a", "b"]', "--output", str(tmp_path / "out"), *STEPS]
    assert main([*args, "--identity", str(zero), "--eta", "-1", "--delta", ".nan", "--seed", "-1"]) == 1
    err = capsys.readouterr().err
    assert says(err, "4 problems") and "loading" not in err and "Traceback" not in err
    assert says(err, "--identity", zero, "zeros")
    assert says(err, "--eta", "> 0", "-1.0") and says(err, "--delta", "finite", "nan")
    assert says(err, "--seed", 2**64 - 2, "-1")  # the largest seed allowed here (2 prompts), the value given
    assert main([*args, "--identity", str(integer), "--eta", "1e999", "--seed", str(2**64 - 1)]) == 1
    err = capsys.readouterr().err
    assert says(err, "--identity", integer, "torch.int64", "floating")
    assert says(err, "--eta", "inf") and says(err, "--seed", 2**64 - 1)
    assert not (tmp_path / "out").exists()

    ends = json.dumps([str(zero), str(zero)])
    assert main(["interpolate", *models, "--identities", ends, "--prompts", "a", "--delta", ".inf", *STEPS]) == 1
    err = capsys.readouterr().err
    assert says(err, "--identities[0]", zero, "zeros") and says(err, "--delta", "finite", "inf")
    assert "loading" not in err


def test_generate_refuses_a_used_output_folder_unless_overwrite(tiny_models, references, tmp_path, capsys):
    """Images used to be written into any folder, mixed with (or over) what was there."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "007-00.png").write_bytes(b"an image of an earlier run")
    args = ["generate", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    args += ["--references", str(references / "ref0.png"), "--prompts", "a person", "--output", str(out), *STEPS]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert says(err, "--output", out, "exists") and "--overwrite" in err and "loading" not in err
    assert sorted(p.name for p in out.iterdir()) == ["007-00.png", "notes.txt"]
    assert main([*args, "--overwrite", "true"]) == 0
    written = ["000-00.json", "000-00.png", "identity.safetensors", "notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == written  # the earlier run's image is gone, the note stays


def test_an_oversized_reference_image_is_named_without_a_traceback(tiny_models, tmp_path, capsys):
    """A 20000 × 20000 PNG used to end the command with PIL's DecompressionBombError traceback."""
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)
    args = ["generate", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    args += ["--references", str(huge), "--prompts", "a person", "--output", str(tmp_path / "out"), *STEPS]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert says(err, "--references[0]", huge, f"{Image.MAX_IMAGE_PIXELS:,}", "400,000,000") and "loading" not in err


def test_settings_are_strict_json(tmp_path):
    """A NaN setting used to be written as ``NaN``, which strict JSON readers refuse; now nothing is written."""
    from namespace.inference.commands import _write_image

    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        _write_image(image, tmp_path / "000-00.png", {"delta": float("nan")})
    assert list(tmp_path.iterdir()) == []
    _write_image(image, tmp_path / "000-00.png", {"delta": 1.5})
    assert json.loads((tmp_path / "000-00.json").read_text()) == {"delta": 1.5}


def test_generate_draws_with_the_tiny_models_by_name(tiny_models, references, tmp_path):
    """--encoder tiny --pipeline tiny resolve (namespace.model_names) to the models the tiny folders hold: the same
    identity and the same image, with the settings (height and width too) written beside it."""
    args = ["generate", "--references", str(references / "ref0.png"), "--prompts", "a person", "--seed", "5", *STEPS]
    assert main([*args, "--encoder", "tiny", "--pipeline", "tiny", "--output", str(tmp_path / "named")]) == 0
    folders = ["--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
    assert main([*args, *folders, "--output", str(tmp_path / "saved")]) == 0
    named, saved = (Identity.load(tmp_path / run / "identity.safetensors") for run in ("named", "saved"))
    torch.testing.assert_close(named.embedding, saved.embedding)
    image = Image.open(tmp_path / "named" / "000-00.png")
    assert image.size == (32, 32) and image.tobytes() == Image.open(tmp_path / "saved" / "000-00.png").tobytes()
    settings = json.loads((tmp_path / "named" / "000-00.json").read_text())
    assert settings["encoder"] == settings["pipeline"] == "tiny"
    assert settings["seed"] == 5 and settings["height"] == settings["width"] == 32 and settings["step_window"] is None


def test_bad_models_window_and_seed_are_reported_together_before_loading(tmp_path, capsys):
    """A bad --pipeline, --encoder, --step_window and --seed: one error naming each, and no model loaded."""
    identity = str(Identity(torch.randn(8, 80)).save(tmp_path / "person.safetensors"))
    pipeline, encoder = tmp_path / "no-pipeline", tmp_path / "no-encoder"
    args = ["generate", "--pipeline", str(pipeline), "--encoder", str(encoder), "--identity", identity]
    args += ["--prompts", "a person", "--step_window", "[0.8, 0.2]", "--seed", "-3", "--output", str(tmp_path / "o")]
    assert main([*args, *STEPS]) == 1
    err = capsys.readouterr().err
    assert says(err, "4 problems") and "loading" not in err and "Traceback" not in err
    assert says(err, "--pipeline", pipeline, "not a folder") and says(err, "--encoder", encoder, "not a folder")
    assert says(err, "--step_window", "0.8", "0.2") and says(err, "--seed", "-3")
    assert not (tmp_path / "o").exists()
