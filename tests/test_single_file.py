"""Single-file SDXL checkpoints (``--pipeline model.safetensors``): a file written from the tiny pipeline in the
original layout loads back with every weight equal, draws the same PNG as the pipeline folder, and bad single files
and configs are refused before anything loads."""

import json

import pytest
import torch
from PIL import Image

from namespace import Identity
from namespace.cli import main
from namespace.model_names import ModelName, load_pipeline, parse_pipeline, parse_pipeline_config
from namespace.synthetic.single_file import original_sdxl_state_dict, save_single_file

from .conftest import says

MODELS = ("unet", "vae", "text_encoder", "text_encoder_2")
STEPS = ["--num_inference_steps", "2", "--height", "32", "--width", "32"]


@pytest.fixture(scope="module")
def single_file(tmp_path_factory, tiny_pipe):
    """The tiny pipeline written as one file in the original SDXL layout."""
    return save_single_file(tiny_pipe, tmp_path_factory.mktemp("single-file") / "tiny.safetensors")


def test_the_file_holds_the_original_layout(tiny_pipe):
    state = original_sdxl_state_dict(tiny_pipe)
    prefixes = ("model.diffusion_model.", "first_stage_model.", "conditioner.embedders.0.transformer.text_model.",
                "conditioner.embedders.1.model.")  # fmt: skip
    assert all(key.startswith(prefixes) for key in state)
    layers = tiny_pipe.text_encoder_2.config.num_hidden_layers  # each: q, k, v weights and biases → in_proj (2 keys)
    assert len(state) == sum(len(getattr(tiny_pipe, name).state_dict()) for name in MODELS) - 4 * layers
    # the keys diffusers reads to tell the parts apart, in the shapes it expects
    assert state["model.diffusion_model.input_blocks.0.0.weight"].shape == (32, 4, 3, 3)
    assert state["model.diffusion_model.label_emb.0.0.weight"].shape == (128, 88)
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)
    width, projection = 48, 40  # the tiny bigG
    open_clip = "conditioner.embedders.1.model."
    assert state[open_clip + "text_projection"].shape == (width, projection)
    assert state[open_clip + "transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * width, width)


def test_the_single_file_loads_every_weight_of_the_tiny_pipeline(single_file, tiny_pipe, tiny_models):
    loaded = load_pipeline(str(single_file), device="cpu", config=str(tiny_models.pipeline))
    assert type(loaded).__name__ == "StableDiffusionXLPipeline"
    for name in MODELS:
        expected, found = getattr(tiny_pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert found.keys() == expected.keys(), name
        for key, weights in expected.items():
            assert torch.equal(found[key], weights), f"{name}.{key}"
    img2img = load_pipeline(str(single_file), "img2img", device="cpu", config=str(tiny_models.pipeline))
    assert type(img2img).__name__ == "StableDiffusionXLImg2ImgPipeline"
    text_only = load_pipeline(str(single_file), device="cpu", text_only=True, config=str(tiny_models.pipeline))
    assert text_only.unet is None and text_only.vae is None


def test_generate_from_the_single_file_draws_the_folder_s_image(single_file, tiny_models, tmp_path):
    identity = Identity(torch.randn(8, 80, generator=torch.Generator().manual_seed(0)), label="someone")
    identity.save(tmp_path / "someone.safetensors")
    args = ["generate", "--encoder", str(tiny_models.encoder), "--prompts", "a person", *STEPS]
    args += ["--identity", str(tmp_path / "someone.safetensors")]
    pipelines = {
        "folder": ["--pipeline", str(tiny_models.pipeline)],
        "file": ["--pipeline", str(single_file), "--pipeline_config", str(tiny_models.pipeline)],
    }
    for kind, pipeline in pipelines.items():
        assert main([*args, *pipeline, "--output", str(tmp_path / kind)]) == 0
    image = (tmp_path / "file" / "000-00.png").read_bytes()
    assert image == (tmp_path / "folder" / "000-00.png").read_bytes()
    assert any(low < high for low, high in Image.open(tmp_path / "file" / "000-00.png").getextrema())  # not blank
    settings = json.loads((tmp_path / "file" / "000-00.json").read_text())
    assert settings["pipeline"] == str(single_file) and settings["pipeline_config"] == str(tiny_models.pipeline)


def test_single_files_are_parsed_and_pickles_refused(single_file, tmp_path):
    assert parse_pipeline(str(single_file)) == ModelName(str(single_file), "file", "--pipeline")
    with pytest.raises(FileNotFoundError, match=r"--pipeline: .*missing.safetensors.* does not exist"):
        parse_pipeline(str(tmp_path / "missing.safetensors"))
    for suffix in (".ckpt", ".pt", ".pth", ".bin", ".CKPT"):
        pickle = tmp_path / f"model{suffix}"
        pickle.write_bytes(b"")
        with pytest.raises(ValueError, match=rf"--pipeline: .*model{suffix}.* is a pickled checkpoint"):
            parse_pipeline(str(pickle))
    (tmp_path / "weights.bin").mkdir()  # a folder is a folder, whatever its name
    with pytest.raises(FileNotFoundError, match=r"has no model_index\.json"):
        parse_pipeline(str(tmp_path / "weights.bin"))


def test_pipeline_configs_are_checked_without_loading(single_file, tiny_models, tmp_path):
    file, folder = parse_pipeline(str(single_file)), parse_pipeline(str(tiny_models.pipeline))
    assert parse_pipeline_config(None, file) is None
    assert parse_pipeline_config(str(tiny_models.pipeline), file) == str(tiny_models.pipeline)
    assert parse_pipeline_config("someone/sdxl-configs", file) == "someone/sdxl-configs"  # a Hub id, by its form
    with pytest.raises(ValueError, match=r"--pipeline_config: describes a single-file --pipeline .*\(folder\)"):
        parse_pipeline_config(str(tiny_models.pipeline), folder)
    with pytest.raises(FileNotFoundError, match=r"--pipeline_config: .* has no model_index.json"):
        parse_pipeline_config(str(tiny_models.encoder), file)
    with pytest.raises(FileNotFoundError, match=r"--pipeline_config: .*nowhere.* is not a folder"):
        parse_pipeline_config(str(tmp_path / "nowhere"), None)  # --pipeline's own check failed: this one still runs


def test_the_commands_refuse_bad_single_files_and_configs_before_loading(single_file, tiny_models, tmp_path, capsys):
    from namespace.inference.app.commands import app
    from namespace.inference.story import story

    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"")
    encoder, folder = str(tiny_models.encoder), str(tiny_models.pipeline)
    args = ["--encoder", encoder, "--prompts", "a", "--output", str(tmp_path / "out"), *STEPS]
    assert main(["generate", *args, "--identity", str(tmp_path / "x.safetensors"), "--pipeline", str(pickle)]) == 1
    err = capsys.readouterr().err
    assert says(err, "--pipeline", pickle, "pickled") and "loading" not in err
    ends = json.dumps([str(tmp_path / "a.safetensors")] * 2)
    interpolate = ["interpolate", *args, "--identities", ends, "--pipeline", folder, "--pipeline_config", folder]
    assert main(interpolate) == 1
    err = capsys.readouterr().err
    assert says(err, "--pipeline_config", "single-file", folder) and "loading" not in err
    with pytest.raises(ValueError, match=r"--pipeline_config: .*nowhere"):
        story(encoder, str(single_file), [], tmp_path / "story", "Mira sat.", pipeline_config=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"--pipeline_config: describes a single-file"):
        app(encoder, folder, pipeline_config=folder)


def test_without_a_config_a_missing_hub_cache_names_the_option(single_file, tmp_path, monkeypatch):
    """Offline, diffusers needs the configs of the repository it infers for the checkpoint in the Hub cache: an
    empty cache is reported with --pipeline_config, not as a bare cache miss."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=r"--pipeline .*tiny.safetensors: .*give --pipeline_config"):
        load_pipeline(str(single_file), device="cpu")


def test_the_full_size_architecture_maps_to_the_keys_diffusers_reads():
    """SDXL base's real architecture (on the meta device: shapes, no weights) written in the original layout is read
    back by diffusers' own converters to every key and shape of the four models, and recognised as SDXL base."""
    from types import SimpleNamespace

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as converters
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from namespace.testing.full_size import SDXL_UNET, SDXL_VAE

    def text(width: int, layers: int, heads: int, act: str) -> CLIPTextConfig:
        return CLIPTextConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                              num_attention_heads=heads, projection_dim=1280, hidden_act=act)  # fmt: skip

    with torch.device("meta"):
        pipe = SimpleNamespace(
            unet=UNet2DConditionModel(**SDXL_UNET),
            vae=AutoencoderKL(**SDXL_VAE),
            text_encoder=CLIPTextModel(text(768, 12, 12, "quick_gelu")),
            text_encoder_2=CLIPTextModelWithProjection(text(1280, 32, 20, "gelu")),
        )
    state = original_sdxl_state_dict(pipe)
    assert converters.infer_diffusers_model_type(state) == "xl_base"
    clip_l = converters.convert_ldm_clip_checkpoint(state)
    if not hasattr(pipe.text_encoder, "text_model"):  # recent transformers: diffusers drops the prefix as it loads
        clip_l = {key.removeprefix("text_model."): value for key, value in clip_l.items()}
    open_clip = converters.convert_open_clip_checkpoint(pipe.text_encoder_2, state, "conditioner.embedders.1.model.")
    read_back = {
        "unet": converters.convert_ldm_unet_checkpoint(state, dict(pipe.unet.config)),
        "vae": converters.convert_ldm_vae_checkpoint(state, dict(pipe.vae.config)),
        "text_encoder": clip_l,
        "text_encoder_2": open_clip,
    }
    for name, converted in read_back.items():
        expected = {key: value.shape for key, value in getattr(pipe, name).state_dict().items()}
        assert {key: value.shape for key, value in converted.items()} == expected, name
