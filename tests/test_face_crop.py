"""Cropping references to the face before the CLIP towers (``reference_crop``): the feature cache, streaming training
and inference crop identically on real photos; the setting is saved, checked and refused where it does not fit."""

import dataclasses
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from namespace.cli import main
from namespace.data_pipeline.features import FeatureConfig, extract_features
from namespace.data_pipeline.shards import ShardWriter
from namespace.encoder import NameEncoder, NameEncoderConfig
from namespace.encoder.reference_crop import crop_references
from namespace.faces import FaceStackMissing, crop_to_face
from namespace.images import load_image
from namespace.testing import synthetic_face, tiny_name_encoder_config
from namespace.train.augment import centre
from namespace.train.cached_data import CachedFeatureDataModule
from namespace.train.slot_stream import SlotLayout
from namespace.train.streaming_data import ShardImageStream, StreamingImageDataModule, decode_photo

from .conftest import ROOT

PHOTOS = ("obama.jpg", "biden.jpg", "obama_partial_face.jpg")
NAME_SHAPE = (8, 80, 40)  # tokens, width, tiny tower features (16 + 24)


@pytest.fixture(scope="module")
def photo_shard(real_faces, tmp_path_factory):
    """One webdataset shard holding the real photos (in a temporary folder, never in the repository)."""
    folder, _ = real_faces
    with ShardWriter(tmp_path_factory.mktemp("shard"), "train", per_shard=10) as writer:
        for index, name in enumerate(PHOTOS):
            writer.write(f"{index:04d}", (folder / name).read_bytes(), {"identity_id": index, "split": "train"})
    return writer.paths[0]


def cropping_encoder(mode):
    return NameEncoder(dataclasses.replace(tiny_name_encoder_config(), reference_crop=mode))


def cached_features(shard, mode, output):
    output.mkdir()
    summary = extract_features([str(shard)], output, FeatureConfig(tiny_name_encoder_config().towers, 2, ["cpu"], mode))
    assert summary["reference_crop"] == mode
    return torch.from_numpy(np.concatenate([np.load(output / f"tower_{i}.npy") for i in range(2)], axis=1)).float()


@pytest.mark.parametrize("mode", ["loose", "aligned"])
def test_the_cache_streaming_and_inference_crop_identically(real_faces, photo_shard, face_stack, mode, tmp_path):
    folder, _ = real_faces
    paths = [folder / name for name in PHOTOS]
    inference = cropping_encoder(mode).image_features(paths)  # (3, 40)
    cache = cached_features(photo_shard, mode, tmp_path / "features")
    torch.testing.assert_close(cache, inference, rtol=0, atol=3e-3)  # the cache is fp16
    # streaming: the photo augmentation starts from, then (augmentation off) what the stream yields
    started = [decode_photo(path.read_bytes(), mode) for path in paths]
    streamed = cropping_encoder("none").image_features(started)
    torch.testing.assert_close(streamed, inference, rtol=0, atol=1e-6)
    layout = SlotLayout(batch_size=3, seed=0, rank=0, ranks=1, workers=0)
    stream = ShardImageStream([photo_shard], [3], "train", {0: 0, 1: 1, 2: 2}, False, 64, 1, (0.6, 1.0), layout, mode)
    yielded = [sample["images"] for sample in stream.slot_samples(0, epoch=0)]
    expected = [centre(crop_to_face(load_image(path), mode, face_stack), 64) for path in paths]
    assert all(torch.equal(a, b) for a, b in zip(yielded, expected, strict=True))
    # and the crop matters: whole photos give other features
    whole = cropping_encoder("none").image_features(paths)
    assert (whole - inference).abs().amax(dim=1).min() > 0.1


def test_loose_and_aligned_crops_on_real_and_partial_faces(real_faces, face_stack):
    folder, _ = real_faces
    photo, partial = load_image(folder / "obama.jpg"), load_image(folder / "obama_partial_face.jpg")
    loose, aligned = crop_references([photo], "loose")[0], crop_references([photo], "aligned")[0]
    (face,) = face_stack.detect(photo)
    # a square of 2.2 face sides around the face, clipped where it meets the photo's top edge
    centre_y = (face.box[1] + face.box[3]) / 2
    assert abs(loose.width - 2.2 * face.width) <= 1 and loose.height == round(centre_y + 1.1 * face.height)
    assert aligned.size == (448, 448)
    # the partial face's box reaches past the left edge: the loose crop is clipped to the photo, not padded
    cut = crop_references([partial], "loose")[0]
    assert face_stack.detect(partial)[0].box[0] < 0 and cut.height > cut.width and cut.width < partial.width
    # a photo without a face is kept whole; "none" returns the very images, tensors included
    faceless = synthetic_face(1, 0)
    assert crop_references([faceless], "aligned")[0].size == faceless.size
    tensor = torch.rand(3, 20, 30)
    assert crop_references([tensor], "none")[0] is tensor
    assert crop_references([tensor], "loose")[0].size == (30, 20)  # made a PIL image for the crop


def test_the_crop_is_saved_with_the_encoder_and_old_folders_load_as_none(tmp_path):
    encoder = cropping_encoder("aligned")
    encoder.save_pretrained(tmp_path / "encoder")
    assert json.loads((tmp_path / "encoder/config.json").read_text())["reference_crop"] == "aligned"
    assert NameEncoder.from_pretrained(tmp_path / "encoder", load_towers=False).config.reference_crop == "aligned"
    config = json.loads((tmp_path / "encoder/config.json").read_text())
    del config["reference_crop"]  # a folder written before the option existed
    (tmp_path / "encoder/config.json").write_text(json.dumps(config))
    assert NameEncoder.from_pretrained(tmp_path / "encoder", load_towers=False).config.reference_crop == "none"
    assert NameEncoderConfig().reference_crop == "none"  # the paper: whole portraits


def set_manifest_crop(folder, config_crop, stage_crop):
    """Rewrites manifest.json's record of the features' crop (None: the key is absent, as in older builds)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for record, value in ((manifest["config"]["features"], config_crop), (manifest["stages"]["features"], stage_crop)):
        record.pop("reference_crop", None)
        if value is not None:
            record["reference_crop"] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_training_on_cached_features_refuses_another_crop(built, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(built[0], data, ignore=shutil.ignore_patterns("work", "*.tar"))
    assert built[1]["config"]["features"]["reference_crop"] == "none"  # the build writes it
    set_manifest_crop(data, "loose", "loose")
    with pytest.raises(ValueError, match=r"made with features.reference_crop='loose', but the encoder config says "
                                         r"reference_crop='none'"):  # fmt: skip
        CachedFeatureDataModule(str(data)).load(*NAME_SHAPE)
    assert CachedFeatureDataModule(str(data)).load(*NAME_SHAPE, "loose").reference_crop == "loose"
    # through the trainer: the module hands the encoder config's crop to the data module, which refuses it
    args = ["train", "fit", "--config", str(ROOT / "configs/train/tiny.yaml"), "--data.data_dir", str(data)]
    args += ["--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
    args += ["--trainer.callbacks", "[]", "--trainer.enable_checkpointing", "false"]
    assert main([*args, "--model.encoder.reference_crop", "aligned"]) == 1
    assert (
        "features.reference_crop='loose', but the encoder config says reference_crop='aligned'"
        in capsys.readouterr().err
    )
    set_manifest_crop(data, None, None)  # a manifest from before the option: its features are whole photos
    assert CachedFeatureDataModule(str(data)).load(*NAME_SHAPE).reference_crop == "none"
    with pytest.raises(ValueError, match="reference_crop='aligned'"):
        CachedFeatureDataModule(str(data)).load(*NAME_SHAPE, "aligned")


class TestBadInput:
    def test_unknown_modes_name_the_setting(self, tiny_encoder):
        with pytest.raises(ValueError, match=r"reference_crop: expected one of none, loose, aligned, got 'tight'"):
            NameEncoderConfig(reference_crop="tight")
        with pytest.raises(ValueError, match=r"features.reference_crop: expected one of none, loose, aligned, got 'x'"):
            FeatureConfig(reference_crop="x")
        with pytest.raises(ValueError, match=r"reference_crop: expected one of none, loose, aligned, got 'face'"):
            tiny_encoder.encode(synthetic_face(1, 0), reference_crop="face")
        with pytest.raises(ValueError, match=r"encoder.reference_crop: expected one of none, loose, aligned"):
            StreamingImageDataModule("laioncele").load(*NAME_SHAPE, "tight")

    def test_a_crop_without_the_face_stack_names_the_extra(self, monkeypatch, photo_shard, tmp_path):
        monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
        extra = r'pip install "magicnaming\[faces\]"'
        with pytest.raises(FaceStackMissing, match=rf"reference_crop='loose' needs .*'dlib'.*{extra}"):
            cropping_encoder("loose").image_features(synthetic_face(1, 0))
        with pytest.raises(FaceStackMissing, match=rf"features.reference_crop='aligned' needs .*{extra}"):
            extract_features([str(photo_shard)], tmp_path, FeatureConfig(reference_crop="aligned"))
        with pytest.raises(FaceStackMissing, match=rf"encoder.reference_crop='loose' needs .*{extra}"):
            StreamingImageDataModule("laioncele").load(*NAME_SHAPE, "loose")
        # no crop needs no face stack
        assert cropping_encoder("none").image_features(synthetic_face(1, 0)).shape == (1, 40)
