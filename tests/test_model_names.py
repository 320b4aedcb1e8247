"""The one resolver for model names (namespace.model_names): each kind parsed cheaply, bad names refused naming the
argument, and what the names mean loaded (the tiny models, a saved folder, a miniature-world folder)."""

import json

import pytest
import torch

from namespace.model_names import (
    ModelName,
    judge_folder,
    load_encoder,
    load_pipeline,
    parse_encoder,
    parse_pipeline,
    resolve_device,
    resolve_dtype,
)


def test_each_pipeline_kind_is_parsed_without_loading(tmp_path, tiny_models):
    world = tmp_path / "world"
    (world / "pipeline").mkdir(parents=True)
    (world / "world.json").write_text(json.dumps({}))
    kinds = {
        "tiny": "tiny",
        "miniature": "miniature",
        str(world): "world",
        str(tiny_models.pipeline): "folder",
        "someone/sdxl-pipeline": "hub",
    }
    for text, kind in kinds.items():
        assert parse_pipeline(text) == ModelName(text, kind, "--pipeline")
    assert parse_pipeline(str(world)).location() == str(world / "pipeline")
    assert parse_pipeline(str(tiny_models.pipeline)).location() == str(tiny_models.pipeline)
    assert parse_pipeline("tiny").world() is None


def test_bad_pipeline_names_are_refused_naming_the_argument(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--pipeline: .*missing.* is not a folder"):
        parse_pipeline(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"probe.pipeline: .*empty.* has no model_index.json"):
        parse_pipeline(str(tmp_path / "empty"), "probe.pipeline")
    with pytest.raises(ValueError, match=r"--pipeline: expected tiny, miniature, .* got ''"):
        parse_pipeline("")


def test_encoder_names(tmp_path, tiny_models):
    assert parse_encoder("tiny").kind == "tiny"
    assert parse_encoder(str(tiny_models.encoder)).kind == "folder"
    assert parse_encoder("someone/encoder").kind == "hub"
    with pytest.raises(FileNotFoundError, match=r"--encoder: .* has no config.json"):
        parse_encoder(str(tiny_models.pipeline))


def test_judge_names():
    assert judge_folder("judge:worlds/a/judge").as_posix() == "worlds/a/judge"
    assert judge_folder("face") is None
    with pytest.raises(ValueError, match="judge:FOLDER"):
        judge_folder("judge:")


def test_devices_and_dtypes_name_their_flag():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match=r"--device: expected auto, cpu, .* got 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match=r"--dtype: expected auto, .* got 'fp8'"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_tiny_and_saved_pipelines_load_the_same_weights(tiny_models):
    tiny = load_pipeline("tiny", device="cpu")
    saved = load_pipeline(str(tiny_models.pipeline), device="cpu")
    text_only = load_pipeline(str(tiny_models.pipeline), device="cpu", text_only=True)
    assert text_only.unet is None and text_only.vae is None
    for name, weights in tiny.unet.state_dict().items():
        assert torch.equal(weights, saved.unet.state_dict()[name]), name
    encoder = load_encoder("tiny", "cpu", pipe=tiny)
    assert encoder.config.width == saved.text_encoder.config.hidden_size + saved.text_encoder_2.config.hidden_size
    assert not encoder.training
    img2img = load_pipeline("tiny", task="img2img", device="cpu")
    assert "Img2Img" in type(img2img).__name__
    with pytest.raises(ValueError, match=r"--task: expected one of text2img, img2img, inpaint, got 'video'"):
        load_pipeline("tiny", task="video")
