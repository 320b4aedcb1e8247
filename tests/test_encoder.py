"""The name encoder: shapes, frozen towers, preprocessing inputs, save/load round trips, bad input."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import namespace as ns
from namespace.encoder import NameEncoderConfig, TowerConfig
from namespace.testing import TINY_WIDTH, tiny_name_encoder, tiny_name_encoder_config


@pytest.fixture
def images(tmp_path):
    generator = torch.Generator().manual_seed(3)
    paths = []
    for index in range(3):
        pixels = (torch.rand(40 + 8 * index, 56, 3, generator=generator) * 255).to(torch.uint8).numpy()
        path = tmp_path / f"face{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_encode_shape_and_input_kinds_agree(tiny_encoder, images):
    from_paths = tiny_encoder.encode(images)
    assert from_paths.shape == (3, 8, TINY_WIDTH) and from_paths.dtype == torch.float32
    from_pil = tiny_encoder.encode([Image.open(path) for path in images])
    torch.testing.assert_close(from_pil, from_paths, rtol=0, atol=0)
    tensor = torch.from_numpy(np.array(Image.open(images[0]).convert("RGB"))).permute(2, 0, 1) / 255
    from_tensor = tiny_encoder.encode(tensor)  # Resize on a tensor vs on a PIL image differ slightly
    torch.testing.assert_close(from_tensor, from_paths[:1], rtol=0.05, atol=0.05)
    assert torch.allclose(tiny_encoder.encode(images, batch_size=2), from_paths, atol=1e-6)


def test_forward_from_features_equals_encode(tiny_encoder, images):
    features = tiny_encoder.image_features(images)
    assert features.shape == (3, 16 + 24)
    torch.testing.assert_close(tiny_encoder(features), tiny_encoder.encode(images), rtol=0, atol=0)


def test_towers_are_frozen_and_get_no_gradient(tiny_encoder, images):
    tiny_encoder.train()
    assert all(not tower.training for tower in tiny_encoder.towers)
    assert all(not p.requires_grad for p in tiny_encoder.towers.parameters())
    loss = tiny_encoder(tiny_encoder.image_features(images)).square().mean()
    loss.backward()
    assert all(p.grad is None for p in tiny_encoder.towers.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_encoder.head.parameters())


def test_head_only_encoder_refuses_images(images):
    encoder = tiny_name_encoder(load_towers=False)
    assert encoder(torch.randn(2, 40)).shape == (2, 8, TINY_WIDTH)
    with pytest.raises(RuntimeError, match="load_towers=False"):
        encoder.encode(images)


def test_save_load_round_trip_is_bit_identical(tiny_encoder, images, tmp_path):
    tiny_encoder.save_pretrained(tmp_path / "encoder")
    assert sorted(p.name for p in (tmp_path / "encoder").iterdir()) == ["config.json", "model.safetensors"]
    stored = load_file(tmp_path / "encoder" / "model.safetensors")
    assert not any(key.startswith("towers.") for key in stored)  # towers are referenced, never copied
    loaded = ns.NameEncoder.from_pretrained(tmp_path / "encoder")
    assert loaded.config == tiny_encoder.config
    for key, tensor in tiny_encoder.exported_state().items():
        assert torch.equal(loaded.exported_state()[key], tensor), key
    torch.testing.assert_close(loaded.encode(images), tiny_encoder.encode(images), rtol=0, atol=0)
    torch.testing.assert_close(loaded.statistics.components, tiny_encoder.statistics.components, rtol=0, atol=0)


def test_config_round_trips_through_json_and_yaml():
    config = tiny_name_encoder_config()
    assert NameEncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert NameEncoderConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


def test_default_config_is_the_sdxl_recipe():
    config = NameEncoderConfig()
    assert [(t.model, t.pretrained, t.embed_dim) for t in config.towers] == [
        ("ViT-L-14", "openai", 768),
        ("ViT-bigG-14", "laion2b_s39b_b160k", 1280),
    ]
    assert (config.num_tokens, config.width, config.feature_dim) == (8, 2048, 2048)
    head = ns.NameEncoder(config, load_towers=False).head
    assert sum(p.numel() for p in head.parameters()) == 41_963_520  # the figure in NameEncoderConfig's docstring


def test_half_precision_towers_feed_an_fp32_head(images):
    config = tiny_name_encoder_config()
    config.towers = [dataclasses.replace(tower, precision="bf16") for tower in config.towers]
    encoder = ns.NameEncoder(config)
    assert next(encoder.towers[0].parameters()).dtype == torch.bfloat16
    assert next(encoder.head.parameters()).dtype == torch.float32
    assert encoder.encode(images).dtype == torch.float32


def test_statistics_must_be_set_before_use():
    encoder = tiny_name_encoder(load_towers=False)
    with pytest.raises(RuntimeError, match="holds no name-space statistics"):
        encoder.statistics  # noqa: B018
    stats = ns.NameSpaceStatistics.fit(torch.randn(5, 8, 3))
    with pytest.raises(ValueError, match=r"mean has shape \(8, 3\), the encoder expects \(8, 80\)"):
        encoder.set_statistics(stats)


class TestBadInput:
    def test_empty_image_list(self, tiny_encoder):
        with pytest.raises(ValueError, match="images: expected at least one image, got an empty list"):
            tiny_encoder.encode([])

    def test_missing_and_unreadable_files(self, tiny_encoder, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"images\[0\]: image file .*nope.png' does not exist"):
            tiny_encoder.encode([tmp_path / "nope.png"])
        text = tmp_path / "notes.jpg"
        text.write_text("not an image")
        with pytest.raises(ValueError, match=r"images\[0\]: .*notes.jpg' is not a readable image file"):
            tiny_encoder.encode(text)
        truncated = tmp_path / "cut.png"
        Image.new("RGB", (64, 64), "blue").save(truncated)
        truncated.write_bytes(truncated.read_bytes()[:60])
        with pytest.raises(ValueError, match=r"cut\.png' is not a readable image file"):
            tiny_encoder.encode([truncated])

    def test_wrong_tensor_and_type(self, tiny_encoder):
        with pytest.raises(ValueError, match=r"expected a float tensor of shape \(3, H, W\)"):
            tiny_encoder.encode(torch.rand(1, 32, 32))
        with pytest.raises(TypeError, match="expected a PIL image, a file path or a"):
            tiny_encoder.encode([42])

    def test_features_of_the_wrong_width(self, tiny_encoder):
        with pytest.raises(ValueError, match=r"features: expected shape \(B, 40\)"):
            tiny_encoder(torch.randn(2, 2048))

    def test_config_problems_are_gathered(self):
        with pytest.raises(ValueError, match=r"(?s)num_tokens: expected a positive integer.*activation: expected"):
            NameEncoderConfig(towers=[], num_tokens=0, activation="tanh")
        with pytest.raises(ValueError, match="unknown keys"):
            NameEncoderConfig.from_dict({"num_token": 8})

    def test_tower_width_must_match_config(self):
        with pytest.raises(ValueError, match="gives 16-wide image embeddings, but the config says embed_dim=768"):
            ns.NameEncoder(NameEncoderConfig(towers=[TowerConfig("MagicNaming-Tiny-L", None, 768)], width=8))

    def test_not_an_encoder_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
            ns.NameEncoder.from_pretrained(tmp_path)
        with pytest.raises(FileNotFoundError, match="is not a folder"):
            ns.NameEncoder.from_pretrained(tmp_path / "missing" / "encoder")

    def test_weights_of_another_config_or_version_are_refused(self, tiny_encoder, tmp_path):
        folder = tiny_encoder.save_pretrained(tmp_path / "encoder")
        config = json.loads((folder / "config.json").read_text())
        config["hidden_dims"] = [32, 32]
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=r"does not fit this encoder config.*head.layers.0.weight"):
            ns.NameEncoder.from_pretrained(folder)
        config["format_version"] = 99
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="format_version 99 is not supported"):
            ns.NameEncoder.from_pretrained(folder)

    def test_nan_weights_are_refused(self, tiny_encoder, tmp_path):
        folder = tiny_encoder.save_pretrained(tmp_path / "encoder")
        state = load_file(folder / "model.safetensors")
        state["name_mean"][0, 0] = float("nan")
        save_file(state, folder / "model.safetensors")
        with pytest.raises(ValueError, match="name_mean: expected finite values, found 1 NaN"):
            ns.NameEncoder.from_pretrained(folder)


def test_tower_loads_a_local_checkpoint_path(tmp_path):
    """`pretrained` may be a local file: the tower then holds exactly the checkpoint's weights."""
    import open_clip

    from namespace.encoder.towers import ImageTower, register_model_configs

    register_model_configs()
    torch.manual_seed(11)
    clip = open_clip.create_model("MagicNaming-Tiny-L")
    checkpoint = tmp_path / "tiny-l.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, checkpoint)
    tower = ImageTower(TowerConfig(model="MagicNaming-Tiny-L", pretrained=str(checkpoint), embed_dim=16, seed=99))
    for name, tensor in clip.visual.state_dict().items():
        assert torch.equal(tower.visual.state_dict()[name], tensor), name


def test_a_folder_with_local_tower_checkpoints_loads_after_a_move(tmp_path, images):
    """Local tower checkpoints are copied into the folder (as safetensors, a .pt read with weights_only=True): moved,
    with the original checkpoints deleted, the folder loads to the same encoder."""
    import open_clip

    from namespace.encoder.towers import register_model_configs
    from namespace.testing import tiny_tower_configs

    register_model_configs()
    originals = tmp_path / "checkpoints"
    originals.mkdir()
    towers = []
    for index, tower in enumerate(tiny_tower_configs()):
        torch.manual_seed(20 + index)
        state = {key: value.contiguous() for key, value in open_clip.create_model(tower.model).state_dict().items()}
        if index == 0:
            path = originals / "tiny-l.safetensors"
            save_file(state, path)
        else:  # a training checkpoint: a pickle, read with weights_only=True and stored as safetensors
            path = originals / "tiny-bigg.pt"
            torch.save({"state_dict": state, "epoch": 3}, path)
        towers.append(dataclasses.replace(tower, pretrained=str(path)))
    config = tiny_name_encoder_config()
    config.towers = towers
    encoder = ns.NameEncoder(config).eval()
    expected = encoder.encode(images)
    encoder.save_pretrained(tmp_path / "first" / "encoder")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    shutil.rmtree(originals)
    folder = tmp_path / "moved" / "encoder"
    stored = json.loads((folder / "config.json").read_text())
    assert stored["format_version"] == 3
    assert [tower["pretrained"] for tower in stored["towers"]] == [
        "towers/0-MagicNaming-Tiny-L.safetensors",
        "towers/1-MagicNaming-Tiny-bigG.safetensors",
    ]
    loaded = ns.NameEncoder.from_pretrained(folder)
    torch.testing.assert_close(loaded.encode(images), expected, rtol=0, atol=0)
    loaded.save_pretrained(folder)  # saved over itself: the checkpoints stay
    torch.testing.assert_close(ns.NameEncoder.from_pretrained(folder).encode(images), expected, rtol=0, atol=0)


def test_a_version_1_folder_loads_with_delta_1(tiny_encoder, tmp_path):
    """Folders written before δ was calibrated have no name_delta: they load with δ = 1 (eq. 4 off), as before."""
    tiny_encoder.set_statistics(dataclasses.replace(tiny_encoder.statistics, delta=1.4))
    folder = tiny_encoder.save_pretrained(tmp_path / "encoder")
    assert ns.NameEncoder.from_pretrained(folder).statistics.delta == pytest.approx(1.4)
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(folder / "model.safetensors")
    del state["name_delta"]
    save_file(state, folder / "model.safetensors")
    loaded = ns.NameEncoder.from_pretrained(folder)
    assert loaded.statistics.delta == 1.0
    torch.testing.assert_close(loaded.statistics.mean, tiny_encoder.statistics.mean, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_statistics_stay_float32_when_the_encoder_is_cast(tiny_encoder, images, dtype):
    mean = tiny_encoder.name_mean.clone()
    tiny_encoder.to(dtype)
    assert next(tiny_encoder.head.parameters()).dtype == dtype
    assert tiny_encoder.statistics.mean.dtype == torch.float32 and torch.equal(tiny_encoder.statistics.mean, mean)
    assert tiny_encoder.encode(images).dtype == torch.float32
    tiny_encoder.float()
    assert torch.equal(tiny_encoder.name_mean, mean)  # never rounded through the half dtype


def test_statistics_set_back_from_the_encoders_own_views_keep_their_pca(tiny_pipe):
    """``encoder.statistics`` are views of its buffers; setting an edited copy back must not zero the PCA."""
    encoder = tiny_name_encoder(tiny_pipe)
    before = encoder.statistics
    variances = before.variances.clone()
    encoder.set_statistics(dataclasses.replace(before, delta=1.5))
    torch.testing.assert_close(encoder.statistics.variances, variances)
    assert float(encoder.statistics.variances.min()) > 0 and encoder.statistics.delta == 1.5
