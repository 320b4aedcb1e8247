"""MagicNaming.identity with the face stack: warnings about references with no face or several, cropping to the
face (the encoder's crop by default), without the face stack, and ``magicnaming identity encode --crop``."""

import dataclasses
import sys
import warnings

import pytest
import torch
from PIL import Image

from namespace import Identity, NameEncoder
from namespace.cli import main
from namespace.faces import FaceStackMissing, crop_to_face
from namespace.images import load_image
from namespace.inference import MagicNaming
from namespace.testing import synthetic_face, tiny_name_encoder


@pytest.fixture
def naming(tiny_pipe, tiny_encoder):
    return MagicNaming(tiny_pipe, tiny_encoder)


@pytest.fixture(scope="module")
def photos(real_faces):
    folder, _ = real_faces
    return {name: load_image(folder / name) for name in ("obama.jpg", "biden.jpg")}


def two_faces(photos, face_stack, sides):
    """The two people's loose face crops side by side on one canvas, ``sides`` pixels each."""
    crops = [crop_to_face(photos[name], "loose", face_stack) for name in ("obama.jpg", "biden.jpg")]
    canvas = Image.new("RGB", (sum(sides) + 40, max(sides) + 20), "white")
    canvas.paste(crops[0].resize((sides[0], sides[0])), (10, 10))
    canvas.paste(crops[1].resize((sides[1], sides[1])), (sides[0] + 30, 10))
    return canvas


def no_warnings(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def warned(call):
    """The messages of the warnings ``call()`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(warning.message) for warning in caught]


class TestReferenceChecks:
    def test_a_reference_without_a_face_is_named(self, naming, photos):
        with pytest.warns(UserWarning, match=r"^images\[1\]: no face found \(dlib hog detector, upsample 1\)"):
            naming.identity([photos["obama.jpg"], synthetic_face(1, 0)])

    def test_two_faces_of_comparable_size_are_named(self, naming, photos, face_stack):
        group = two_faces(photos, face_stack, (240, 240))
        assert len(face_stack.detect(group)) == 2
        with pytest.warns(UserWarning, match=r"^images\[0\]: 2 faces found; the encoder sees them all"):
            naming.identity(group)
        messages = warned(lambda: naming.identity(group, crop="aligned"))
        assert "images[0]: 2 faces found; the largest is used" in messages

    def test_a_small_face_in_the_background_and_a_single_face_pass_silently(self, naming, photos, face_stack):
        background = two_faces(photos, face_stack, (240, 120))  # the second face has a quarter of the area
        assert len(face_stack.detect(background)) == 2
        identity = no_warnings(lambda: naming.identity([background, photos["biden.jpg"]]))
        assert identity.metadata == {"num_references": "2"}  # not cropped: nothing recorded


class TestCrop:
    def test_a_crop_changes_the_identity_and_is_the_encoding_of_the_cropped_photo(self, naming, photos, face_stack):
        photo = photos["obama.jpg"]
        whole = naming.identity(photo)
        with pytest.warns(UserWarning, match=r"crop='loose': this encoder was trained on references cropped 'none'"):
            loose = naming.identity(photo, crop="loose")
        assert (loose.embedding - whole.embedding).abs().max() > 1e-2
        expected = naming.encoder.encode(crop_to_face(photo, "loose", face_stack))[0]
        torch.testing.assert_close(loose.embedding, expected, rtol=0, atol=1e-6)
        assert loose.metadata["reference_crop"] == "loose"

    def test_no_crop_argument_means_the_encoders_own_crop(self, tiny_pipe, photos):
        encoder = tiny_name_encoder(tiny_pipe)
        aligned = NameEncoder(dataclasses.replace(encoder.config, reference_crop="aligned"))
        aligned.load_state_dict(encoder.state_dict())
        naming = MagicNaming(tiny_pipe, aligned)
        default = no_warnings(lambda: naming.identity(photos["biden.jpg"]))
        torch.testing.assert_close(default.embedding, naming.identity(photos["biden.jpg"], crop="aligned").embedding)
        with pytest.warns(UserWarning, match="crop='none': this encoder was trained on references cropped 'aligned'"):
            whole = naming.identity(photos["biden.jpg"], crop="none")
        plain = MagicNaming(tiny_pipe, encoder).identity(photos["biden.jpg"])
        torch.testing.assert_close(whole.embedding, plain.embedding)

    def test_an_unknown_crop_is_refused(self, naming, photos):
        with pytest.raises(ValueError, match=r"crop: expected one of none, loose, aligned, got 'tight'"):
            naming.identity(photos["obama.jpg"], crop="tight")


def test_without_the_face_stack_nothing_is_checked_and_a_crop_names_the_extra(naming, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
    identity = no_warnings(lambda: naming.identity(synthetic_face(1, 0)))
    torch.testing.assert_close(identity.embedding, naming.encoder.encode(synthetic_face(1, 0))[0])
    with pytest.raises(FaceStackMissing, match=r"crop='loose' needs .*'dlib'.*pip install \"magicnaming\[faces\]\""):
        warned(lambda: naming.identity(synthetic_face(1, 0), crop="loose"))


def test_identity_encode_crops_and_warns_on_the_command_line(real_faces, tiny_models, tmp_path, capfd, face_stack):
    folder, _ = real_faces
    encoder = tiny_models.encoder
    synthetic_face(1, 0).save(tmp_path / "faceless.png")
    command = ["identity", "encode", "--encoder", str(encoder), "--images", str(folder / "obama.jpg")]
    messages = warned(lambda: main([*command, "--crop", "aligned", "--output", str(tmp_path / "aligned.safetensors")]))
    assert len(messages) == 1 and messages[0].startswith("crop='aligned': this encoder was trained on references")
    assert main([*command, "--output", str(tmp_path / "whole.safetensors")]) == 0
    aligned, whole = (Identity.load(tmp_path / f"{name}.safetensors") for name in ("aligned", "whole"))
    assert aligned.metadata["reference_crop"] == "aligned" and "reference_crop" not in whole.metadata
    model = NameEncoder.from_pretrained(encoder)
    chip = crop_to_face(load_image(folder / "obama.jpg"), "aligned", face_stack)
    torch.testing.assert_close(aligned.embedding, model.encode(chip)[0], rtol=0, atol=1e-6)
    assert (aligned.embedding - whole.embedding).abs().max() > 1e-2
    faceless = ["identity", "encode", "--encoder", str(encoder), "--images", str(tmp_path / "faceless.png")]
    messages = warned(lambda: main([*faceless, "--output", str(tmp_path / "faceless.safetensors")]))
    assert messages == ["--images[0]: no face found (dlib hog detector, upsample 1); the whole image is used"]
    capfd.readouterr()
    with pytest.raises(SystemExit):  # jsonargparse refuses a value outside the choices, naming them
        main([*command, "--crop", "tight", "--output", str(tmp_path / "x.safetensors")])
    assert "none" in capfd.readouterr().err


def test_check_faces_false_checks_nothing_and_the_command_prints_one_line_per_warning(tiny_pipe, tiny_models, tmp_path):
    encoder = tiny_models.encoder
    synthetic_face(1, 0).save(tmp_path / "faceless.png")
    naming = MagicNaming(tiny_pipe, NameEncoder.from_pretrained(encoder))
    quiet = no_warnings(lambda: naming.identity(synthetic_face(1, 0), check_faces=False))
    torch.testing.assert_close(quiet.embedding, naming.identity(synthetic_face(1, 0)).embedding)
    command = ["identity", "encode", "--encoder", str(encoder), "--images", str(tmp_path / "faceless.png")]
    messages = warned(lambda: main([*command, "--output", str(tmp_path / "a.safetensors")]))
    assert messages == ["--images[0]: no face found (dlib hog detector, upsample 1); the whole image is used"]
    # the command prints our warnings as one plain line each (pytest records them, so format one here)
    line = warnings.formatwarning(messages[0], UserWarning, "plugin.py", 1)
    assert line == f"magicnaming identity: warning: {messages[0]}\n"
    assert "DeprecationWarning" in warnings.formatwarning("old", DeprecationWarning, "x.py", 1)  # others unchanged
    assert warned(lambda: main([*command, "--check_faces", "false", "--output", str(tmp_path / "b.safetensors")])) == []
