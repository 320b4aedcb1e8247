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


def test_identity_subcommands_then_interpolate(folders, tmp_path):
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


def test_generate_needs_exactly_one_identity_source(folders, tmp_path, capsys):
    args = ["generate", "--encoder", str(folders / "encoder"), "--pipeline", str(folders / "pipeline")]
    assert main([*args, "--prompts", '["a person"]', "--output", str(tmp_path), *STEPS]) == 1
    assert "magicnaming generate: error: give either references" in capsys.readouterr().err
