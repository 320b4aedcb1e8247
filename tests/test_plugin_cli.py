"""magicnaming generate / interpolate / identity on a tiny pipeline folder and encoder folder."""

import json

import pytest
import torch
from PIL import Image

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
