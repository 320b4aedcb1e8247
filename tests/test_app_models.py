"""``magicnaming app``'s models: the names resolved through ``namespace.model_names`` (tiny, the cached miniature
world with the demo's encoder, a world folder, a pipeline folder or Hub id), each kind's image defaults, and every
problem of the names reported together before any model loads (no Gradio needed)."""

from __future__ import annotations

import json

import pytest

from namespace.inference.app.commands import app
from namespace.inference.app.state import (
    DEMO_COMMAND,
    FULL_SIZE_DEFAULTS,
    MINIATURE_DEFAULTS,
    TINY_DEFAULTS,
    resolve_models,
)


def test_each_kind_of_pipeline_has_its_defaults(tmp_path):
    assert resolve_models(None, "tiny") == ("tiny", "tiny", TINY_DEFAULTS)
    assert TINY_DEFAULTS.settings.height == TINY_DEFAULTS.settings.width == 32
    assert (TINY_DEFAULTS.settings.num_inference_steps, TINY_DEFAULTS.max_size) == (2, 128)
    world = tmp_path / "world"  # a miniature world's folder: its pipeline/, drawn at the miniature world's size
    (world / "pipeline").mkdir(parents=True)
    (world / "world.json").write_text(json.dumps({"famous": []}))
    assert resolve_models("my-encoder", str(world)) == ("my-encoder", str(world / "pipeline"), MINIATURE_DEFAULTS)
    settings = MINIATURE_DEFAULTS.settings  # configs/demo.yaml's
    assert (settings.height, settings.num_inference_steps, settings.guidance_scale) == (16, 20, 2.0)
    assert resolve_models("my-encoder", "owner/sdxl") == ("my-encoder", "owner/sdxl", FULL_SIZE_DEFAULTS)
    assert FULL_SIZE_DEFAULTS.settings.height == 1024 and FULL_SIZE_DEFAULTS.max_size == 2048


@pytest.mark.parametrize(
    ("encoder", "pipeline", "message"),
    [
        ("my-encoder", "tiny", "--encoder: --pipeline tiny takes only the tiny test encoder (tiny), got 'my-encoder'"),
        ("tiny", "owner/sdxl", "--encoder tiny: the tiny test encoder works only with --pipeline tiny"),
        (None, "owner/sdxl", "--encoder: --pipeline 'owner/sdxl' needs a name-encoder folder or Hub id"),
    ],
)
def test_an_encoder_that_does_not_go_with_the_pipeline_is_refused(encoder, pipeline, message):
    with pytest.raises(ValueError) as refused:
        resolve_models(encoder, pipeline)
    assert str(refused.value).startswith(message)


def test_a_missing_miniature_world_and_demo_encoder_name_the_demo_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGICNAMING_CACHE", str(tmp_path / "cache"))  # an empty cache: no world built
    monkeypatch.chdir(tmp_path)  # no demo-output/ here
    with pytest.raises(FileNotFoundError) as missing:
        resolve_models(None, "miniature")
    assert str(missing.value).startswith(
        f"--pipeline miniature: the cached miniature world and the demo's encoder ({tmp_path / 'demo-output/encoder'})"
        f" not found; build them with `{DEMO_COMMAND}`"
    )
    with pytest.raises(FileNotFoundError, match=r"^--pipeline miniature: the cached miniature world not found"):
        resolve_models(str(tmp_path), "miniature")  # an encoder of one's own: only the world is missing


def test_every_problem_of_the_names_is_reported_before_anything_loads(tmp_path):
    with pytest.raises(ValueError) as refused:
        app(encoder=str(tmp_path / "no-encoder"), pipeline=str(tmp_path), dtype="fp8", library=tmp_path)
    problems = str(refused.value)
    assert problems.startswith("3 problems:")
    assert f"--pipeline: {str(tmp_path)!r} has no model_index.json (not a diffusers pipeline folder)" in problems
    assert f"--encoder: {str(tmp_path / 'no-encoder')!r} is not a folder" in problems
    assert "--dtype: expected auto, " in problems and "got 'fp8'" in problems
