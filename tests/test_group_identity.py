"""Several people from one photo (``naming.identities_from_group``, ``magicnaming identity from_group``, the app's
group photo): one identity per face, left to right, each with its box, index and crop; no face, only tiny faces or a
missing face stack are clear errors; an earlier group in the output folder is refused before anything loads.

Group photos are made from the real photos of the face_recognition sdist (fixture ``real_faces``): the synthetic
people hold no face a real detector finds."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from namespace import Identity, NameEncoder
from namespace.cli import main
from namespace.faces import FaceStackMissing, crop_to_face
from namespace.images import load_image
from namespace.inference import MagicNaming
from namespace.inference.group_identity import MIN_FACE_SIDE, group_faces
from namespace.testing import synthetic_face

PEOPLE = ("biden.jpg", "obama.jpg", "obama3.jpg")  # left to right in the group photos below


@pytest.fixture(scope="module")
def portraits(real_faces, face_stack):
    """Each person's loose face crop (a square portrait, the face about 0.45 of its side)."""
    folder, _ = real_faces
    return {name: crop_to_face(load_image(folder / name), "loose", face_stack) for name in PEOPLE}


def group_photo(portraits, names=PEOPLE, sides=None) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """The portraits side by side on a white canvas (``sides`` pixels each, 200 by default): the photo and each
    tile's (x0, y0, x1, y1)."""
    sides = sides or [200] * len(names)
    canvas = Image.new("RGB", (sum(sides) + 10 * (len(sides) + 1), max(sides) + 20), "white")
    tiles, x = [], 10
    for name, side in zip(names, sides, strict=True):
        canvas.paste(portraits[name].resize((side, side)), (x, 10))
        tiles.append((x, 10, x + side, 10 + side))
        x += side + 10
    return canvas, tiles


def inside(box, tile) -> bool:
    return tile[0] <= box[0] < box[2] <= tile[2] and tile[1] <= box[1] < box[3] <= tile[3]


def cosine(face_stack, a, b) -> float:
    vectors = face_stack.embed([a, b], missing="raise")
    return float(vectors[0] @ vectors[1])


class TestGroupFaces:
    def test_three_people_give_three_identities_left_to_right(self, tiny_encoder, portraits, face_stack, real_faces):
        photo, tiles = group_photo(portraits)
        group = group_faces(tiny_encoder, photo, faces=face_stack, label="guest")
        assert [person.index for person in group] == [1, 2, 3]
        assert [person.identity.label for person in group] == ["guest-1", "guest-2", "guest-3"]
        for person, tile in zip(group, tiles, strict=True):
            assert inside(person.box, tile), (person.box, tile)
            assert person.identity.metadata == {
                "num_references": "1",
                "reference_crop": "loose",  # the tiny encoder sees whole portraits: a loose crop is the nearest
                "face_index": str(person.index),
                "face_box": ",".join(map(str, person.box)),
                "faces_in_photo": "3",
            }
            # each identity is the encoding of its own crop, and nothing else
            expected = tiny_encoder.encode(person.crop, reference_crop="none")[0]
            torch.testing.assert_close(person.identity.embedding, expected, rtol=0, atol=1e-6)
        # the crop of face k is the person pasted k-th from the left (the face stack's own verdict)
        folder, _ = real_faces
        threshold = face_stack.same_person_threshold
        own = [
            cosine(face_stack, person.crop, load_image(folder / name))
            for person, name in zip(group, PEOPLE, strict=True)
        ]
        assert min(own) >= threshold, own
        assert cosine(face_stack, group[0].crop, group[1].crop) < threshold  # biden is not obama
        assert len({person.identity.embedding.sum().item() for person in group}) == 3

    def test_the_order_follows_the_people_not_the_detector(self, tiny_encoder, portraits, face_stack):
        forward, _ = group_photo(portraits, ("biden.jpg", "obama.jpg"))
        backward, _ = group_photo(portraits, ("obama.jpg", "biden.jpg"))
        ahead = group_faces(tiny_encoder, forward, faces=face_stack)
        behind = group_faces(tiny_encoder, backward, faces=face_stack)
        assert cosine(face_stack, ahead[0].crop, behind[1].crop) >= face_stack.same_person_threshold
        assert cosine(face_stack, ahead[1].crop, behind[0].crop) >= face_stack.same_person_threshold
        assert (ahead[0].identity.embedding - behind[0].identity.embedding).abs().max() > 1e-3

    def test_the_plugin_call_gives_the_identities_and_an_aligned_crop_on_request(
        self, tiny_pipe, tiny_encoder, portraits, face_stack
    ):
        photo, _ = group_photo(portraits)
        naming = MagicNaming(tiny_pipe, tiny_encoder)
        identities = naming.identities_from_group(photo, faces=face_stack)
        expected = group_faces(tiny_encoder, photo, faces=face_stack)
        assert [i.label for i in identities] == ["face-1", "face-2", "face-3"]
        for identity, person in zip(identities, expected, strict=True):
            torch.testing.assert_close(identity.embedding, person.identity.embedding)
        aligned = group_faces(tiny_encoder, photo, crop="aligned", faces=face_stack)
        assert [person.crop.size for person in aligned] == [(448, 448)] * 3
        assert aligned[0].identity.metadata["reference_crop"] == "aligned"
        assert (aligned[0].identity.embedding - expected[0].identity.embedding).abs().max() > 1e-3

    def test_a_photo_without_a_face_is_an_error_naming_the_photo(self, tiny_encoder, face_stack):
        with pytest.raises(ValueError, match=r"^image: no face found \(dlib hog detector, upsample 1\) in the 256x256"):
            group_faces(tiny_encoder, synthetic_face(1, 0, size=256), faces=face_stack)

    def test_only_tiny_faces_are_an_error_and_smaller_faces_beside_larger_ones_are_left_out(
        self, tiny_encoder, portraits, face_stack
    ):
        tiny, _ = group_photo(portraits, sides=[90, 90, 90])  # faces of about 44 px: found, too small
        sides = sorted(round((face.width + face.height) / 2) for face in face_stack.detect(tiny))
        assert len(sides) == 3 and max(sides) < MIN_FACE_SIDE
        with pytest.raises(ValueError, match=r"^image: 3 face\(s\) found, all smaller than min_face_side=64 px"):
            group_faces(tiny_encoder, tiny, faces=face_stack)
        assert len(group_faces(tiny_encoder, tiny, min_face_side=40, faces=face_stack)) == 3
        mixed, tiles = group_photo(portraits, sides=[90, 220, 90])
        with pytest.warns(UserWarning, match=r"^image: 2 of 3 faces left out, smaller than min_face_side=64 px"):
            (kept,) = group_faces(tiny_encoder, mixed, faces=face_stack)
        assert inside(kept.box, tiles[1]) and kept.identity.metadata["faces_in_photo"] == "1"

    def test_bad_options_are_named(self, tiny_encoder, portraits, face_stack):
        photo, _ = group_photo(portraits, ("biden.jpg",))
        with pytest.raises(ValueError, match=r"label: expected letters.*got 'a/b'; min_face_side: expected a positive"):
            group_faces(tiny_encoder, photo, label="a/b", min_face_side=0, faces=face_stack)
        with pytest.raises(ValueError, match=r"crop: expected loose or aligned .*got 'none'"):
            group_faces(tiny_encoder, photo, crop="none", faces=face_stack)
        with pytest.raises(ValueError, match=r"image: expected one group photo, got 2 images"):
            group_faces(tiny_encoder, [photo, photo], faces=face_stack)

    def test_a_missing_face_stack_names_the_extra(self, tiny_encoder, portraits, monkeypatch):
        photo, _ = group_photo(portraits, ("biden.jpg",))
        monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
        with pytest.raises(FaceStackMissing, match=r"group photo needs .*'dlib'.*pip install \"magicnaming\[faces\]\""):
            group_faces(tiny_encoder, photo)


# -- the command -------------------------------------------------------------------------------------------------------


@pytest.fixture
def encoder(tiny_models, tmp_path):
    """A copy of the session's saved tiny encoder (a test breaks its weights)."""
    return Path(shutil.copytree(tiny_models.encoder, tmp_path / "encoder"))


def from_group(encoder, image, output, *options) -> list[str]:
    return ["identity", "from_group", "--encoder", str(encoder), "--image", str(image), "--output", str(output),
            *options]  # fmt: skip


def test_the_command_writes_identity_files_and_crops_left_to_right(encoder, portraits, tmp_path, capsys):
    photo, tiles = group_photo(portraits)
    photo.save(tmp_path / "group.png")
    output = tmp_path / "people"
    assert main(from_group(encoder, tmp_path / "group.png", output)) == 0
    assert f"wrote 3 identities to {output}, left to right (loose crops beside them)" in capsys.readouterr().out
    names = sorted(path.name for path in output.iterdir())
    assert names == [f"face-{k}.{suffix}" for k in (1, 2, 3) for suffix in ("png", "safetensors")]
    model = NameEncoder.from_pretrained(encoder)
    for k, tile in enumerate(tiles, start=1):
        identity = Identity.load(output / f"face-{k}.safetensors", model.config.num_tokens, model.config.width)
        box = tuple(int(v) for v in identity.metadata["face_box"].split(","))
        assert identity.label == f"face-{k}" and identity.metadata["face_index"] == str(k) and inside(box, tile)
        assert identity.metadata["group_photo"] == "group.png" and identity.encoder == str(encoder)
        crop = load_image(output / f"face-{k}.png")  # the crop the encoder saw, losslessly
        torch.testing.assert_close(identity.embedding, model.encode(crop)[0], rtol=0, atol=1e-6)


def test_the_command_refuses_an_earlier_group_before_the_encoder_loads(encoder, portraits, tmp_path, capsys):
    three, _ = group_photo(portraits)
    two, _ = group_photo(portraits, ("obama.jpg", "biden.jpg"))
    three.save(tmp_path / "three.png")
    two.save(tmp_path / "two.png")
    output = tmp_path / "people"
    assert main(from_group(encoder, tmp_path / "three.png", output)) == 0
    written = {path.name: path.read_bytes() for path in output.iterdir()}
    weights = encoder / "model.safetensors"
    kept_weights = weights.read_bytes()
    weights.write_bytes(b"\x00" * 8)  # loading the encoder would fail
    capsys.readouterr()
    assert main(from_group(encoder, tmp_path / "two.png", output)) == 1
    error = capsys.readouterr().err
    assert f"--output: {str(output)!r} already holds identity files of label 'face' (face-1.png, " in error, error
    assert "--overwrite true" in error and "model.safetensors" not in error, error
    assert {path.name: path.read_bytes() for path in output.iterdir()} == written
    weights.write_bytes(kept_weights)
    assert main(from_group(encoder, tmp_path / "two.png", output, "--overwrite", "true")) == 0
    assert sorted(path.name for path in output.iterdir()) == [
        "face-1.png",
        "face-1.safetensors",
        "face-2.png",
        "face-2.safetensors",
    ]  # fmt: skip  (face-3 of the earlier photo is gone: the folder never mixes two photos)
    assert Identity.load(output / "face-1.safetensors").metadata["faces_in_photo"] == "2"
    assert (output / "face-1.png").read_bytes() != written["face-1.png"]


def test_the_command_names_what_it_found_and_writes_nothing(encoder, portraits, tmp_path, capsys):
    synthetic_face(1, 0, size=256).save(tmp_path / "nobody.png")
    tiny, _ = group_photo(portraits, PEOPLE[:2], sides=[90, 90])
    tiny.save(tmp_path / "tiny.png")
    output = tmp_path / "people"
    capsys.readouterr()
    assert main(from_group(encoder, tmp_path / "nobody.png", output)) == 1
    assert "--image: no face found (dlib hog detector, upsample 1) in the 256x256 photo" in capsys.readouterr().err
    assert main(from_group(encoder, tmp_path / "tiny.png", output)) == 1
    error = capsys.readouterr().err
    assert "--image: 2 face(s) found, all smaller than --min_face_side=64 px (sides" in error, error
    assert not output.exists()
    assert main(from_group(encoder, tmp_path / "tiny.png", output, "--min_face_side", "32")) == 0
    assert len(list(output.glob("*.safetensors"))) == 2


def test_the_command_gathers_bad_inputs_before_anything_loads(encoder, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    argv = from_group(encoder, tmp_path / "missing.jpg", tmp_path / "taken", "--label", "a b", "--min_face_side", "0")
    capsys.readouterr()
    assert main(argv) == 1
    error = capsys.readouterr().err
    for expected in ("4 problems", "--output: expected a folder for the identity files", "--label: expected letters",
                     "--min_face_side: expected a positive number", "--image: image file"):  # fmt: skip
        assert expected in error, error


def test_the_command_names_the_extra_without_the_face_stack(encoder, portraits, tmp_path, capsys, monkeypatch):
    photo, _ = group_photo(portraits, ("biden.jpg",))
    photo.save(tmp_path / "one.png")
    monkeypatch.setitem(sys.modules, "dlib", None)
    capsys.readouterr()
    assert main(from_group(encoder, tmp_path / "one.png", tmp_path / "people")) == 1
    assert 'pip install "magicnaming[faces]"' in capsys.readouterr().err
    assert not (tmp_path / "people").exists()


# -- the app -----------------------------------------------------------------------------------------------------------


def test_the_app_saves_one_identity_per_face_into_the_library(portraits, tmp_path):
    gr = pytest.importorskip("gradio")
    from namespace.inference.app import identities_tab
    from namespace.inference.app.drawing import shown_errors
    from namespace.inference.app.state import TINY_DEFAULTS, load_state

    state = load_state("tiny", "tiny", TINY_DEFAULTS, tmp_path / "library", tmp_path / "outputs")
    photo, _ = group_photo(portraits)
    photo.save(tmp_path / "group.png")
    make = shown_errors(lambda *args: identities_tab.make_group_identities(state, *args, progress=lambda *a, **k: None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # three clear faces: nothing to warn about
        status, files, cleared = make(str(tmp_path / "group.png"), "guest")
    assert status == "saved 3 identities from the group photo, left to right: 'guest-1', 'guest-2', 'guest-3'"
    assert cleared is None and [Path(file).name for file in files] == [f"guest-{k}.safetensors" for k in (1, 2, 3)]
    entries = state.library.entries()
    assert [entry.label for entry in entries] == ["guest-1", "guest-2", "guest-3"]
    assert all(entry.thumbnail is not None for entry in entries)
    first = state.library.load("guest-1")
    assert first.metadata["face_index"] == "1" and first.encoder == "tiny"
    thumbnail = np.asarray(Image.open(entries[0].thumbnail))
    assert thumbnail.std() > 10  # a face crop, not a blank square
    synthetic_face(1, 0, size=256).save(tmp_path / "nobody.png")
    with pytest.raises(gr.Error) as shown:
        make(str(tmp_path / "nobody.png"), "guest")
    assert shown.value.message.startswith("group photo: no face found (dlib hog detector, upsample 1)")
    assert str(tmp_path) not in shown.value.message and len(state.library.entries()) == 3
    with pytest.raises(gr.Error, match="group photo: expected a photo of several people, got none"):
        make(None, "guest")
