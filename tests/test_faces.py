"""The face stack (namespace.faces) on real photos: detection, alignment, embeddings, the calibrated threshold, and
every bad input a clear error. The photos come from the face_recognition 1.3.0 sdist (fixture ``real_faces``)."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from namespace.faces import (
    FaceConfig,
    FaceStackMissing,
    calibrate_same_person_threshold,
    crop_to_face,
    face_stack_installed,
    load_face_embedder,
)
from namespace.faces.config import DLIB_SAME_PERSON_THRESHOLD
from namespace.testing.real_faces import PARTIAL


def photo(real_faces, name):
    folder, _ = real_faces
    return Image.open(folder / name).convert("RGB")


def test_each_real_photo_has_one_face_with_five_landmarks_inside_its_box(real_faces, face_stack):
    _, people = real_faces
    for name in people:
        image = photo(real_faces, name)
        faces = face_stack.detect(image)
        assert len(faces) == 1, name
        face = faces[0]
        x0, y0, x1, y1 = face.box
        assert face.landmarks.shape == (5, 2) and face.score > 0
        assert (face.landmarks[:, 0] > x0 - 0.1 * face.width).all() and (face.landmarks[:, 0] < x1).all()
        assert (face.landmarks[:, 1] > y0).all() and (face.landmarks[:, 1] < y1).all()
        visible = face.visible_fraction(image.size)
        assert visible < 0.9 if name in PARTIAL else visible == 1.0, (name, visible)


def test_same_person_above_and_different_people_below_the_configured_threshold(real_faces, face_stack):
    folder, people = real_faces
    names = list(people)
    embeddings = face_stack.embed([folder / name for name in names])
    assert embeddings.shape == (len(names), 128) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    threshold = FaceConfig().threshold
    assert threshold == DLIB_SAME_PERSON_THRESHOLD == face_stack.same_person_threshold
    cosine = embeddings @ embeddings.T
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            same = people[names[i]] == people[names[j]]
            assert (cosine[i, j] >= threshold) == same, (names[i], names[j], cosine[i, j])


def test_the_shipped_threshold_is_the_calibration_on_the_real_photos(real_faces, face_stack):
    folder, people = real_faces
    embeddings = face_stack.embed([folder / name for name in people])
    calibration = calibrate_same_person_threshold(embeddings, list(people.values()))
    assert calibration.separated and calibration.same_pairs == 15 and calibration.different_pairs == 6
    assert calibration.different_max < DLIB_SAME_PERSON_THRESHOLD < calibration.same_min
    assert abs(calibration.threshold - DLIB_SAME_PERSON_THRESHOLD) < 0.01  # the midpoint, rounded


def test_calibration_of_overlapping_pairs_takes_the_equal_error_cosine():
    # 1-d "embeddings" on the unit circle: same-person pairs at cosines 0.9 and 0.5, different ones 0.6 and 0.2
    angles = {"a1": 0.0, "a2": np.arccos(0.9), "b1": np.arccos(0.6), "b2": np.arccos(0.6) + np.arccos(0.5)}
    embeddings = np.array([[np.cos(t), np.sin(t)] for t in angles.values()])
    calibration = calibrate_same_person_threshold(embeddings, ["a", "a", "b", "b"])
    assert not calibration.separated
    same = [0.9, 0.5]
    different = [float(embeddings[i] @ embeddings[j]) for i, j in [(0, 2), (0, 3), (1, 2), (1, 3)]]
    rates = abs(np.mean(np.array(same) < calibration.threshold) - np.mean(np.array(different) >= calibration.threshold))
    assert rates <= 0.25


def test_align_turns_a_tilted_face_upright(real_faces, face_stack):
    tilted = photo(real_faces, "obama.jpg").rotate(20, resample=Image.BICUBIC)
    face = face_stack.detect(tilted)[0]
    eyes = face.landmarks[:4]
    assert abs(eyes[0, 1] - eyes[2, 1]) > 30  # outer eye corners 30+ px apart in height before alignment
    chip = face_stack.align(tilted, face, size=448)
    assert chip.size == (448, 448)
    upright = face_stack.detect(chip)[0].landmarks[:4]
    assert abs(upright[0, 1] - upright[2, 1]) < 8


def test_no_face_gives_a_nan_row_with_its_reason_or_an_error_when_asked(real_faces, face_stack, tmp_path):
    folder, _ = real_faces
    blank = Image.new("RGB", (300, 300), (120, 130, 140))
    analysis = face_stack.analyse([folder / "obama.jpg", blank])
    assert not np.isnan(analysis.embeddings[0]).any() and np.isnan(analysis.embeddings[1]).all()
    assert analysis.reasons[0] is None and analysis.reasons[1].startswith("no face found (dlib hog detector")
    assert analysis.faces[1] == [] and analysis.sizes[1] == (300, 300)
    blank.save(tmp_path / "wall.png")
    with pytest.raises(ValueError, match=r"images\[1\] \('.*wall.png'\): no face found \(dlib hog detector"):
        face_stack.embed([folder / "obama.jpg", tmp_path / "wall.png"], missing="raise")


def test_batches_tensors_paths_and_images_give_the_same_rows(real_faces, face_stack):
    folder, people = real_faces
    paths = [folder / name for name in people]
    whole = face_stack.embed(paths, batch_size=32)
    np.testing.assert_allclose(face_stack.embed(paths, batch_size=2), whole, atol=1e-6)
    obama = photo(real_faces, "obama.jpg")
    tensor = torch.from_numpy(np.array(obama)).permute(2, 0, 1).float() / 255
    np.testing.assert_allclose(face_stack.embed([tensor])[0], whole[0], atol=1e-5)
    np.testing.assert_allclose(face_stack.embed(obama)[0], whole[0], atol=1e-6)


def test_the_cnn_detector_finds_the_same_face(real_faces, face_stack):
    small = photo(real_faces, "obama.jpg").resize((364, 455))
    cnn = load_face_embedder(FaceConfig(detector="cnn", upsample=0))
    faces = cnn.detect(small)
    assert len(faces) == 1
    hog_face = face_stack.detect(small)[0]
    overlap_x = min(faces[0].box[2], hog_face.box[2]) - max(faces[0].box[0], hog_face.box[0])
    assert overlap_x > 0.6 * hog_face.width
    assert float(cnn.embed([small])[0] @ face_stack.embed([small])[0]) > 0.98


def test_crop_to_face_loose_and_aligned(real_faces, face_stack):
    image = photo(real_faces, "obama.jpg")
    assert crop_to_face(image, "none", None) is image
    loose = crop_to_face(image, "loose", face_stack)
    face = face_stack.detect(image)[0]
    assert face.width < loose.width < image.width and loose.height < image.height
    assert crop_to_face(image, "aligned", face_stack).size == (448, 448)
    blank = Image.new("RGB", (200, 200))
    assert crop_to_face(blank, "loose", face_stack) is blank  # no face: the whole image
    with pytest.raises(ValueError, match="reference_crop: expected one of none, loose, aligned, got 'tight'"):
        crop_to_face(image, "tight", face_stack)


def test_a_non_image_file_is_named_in_the_error(tmp_path, face_stack, real_faces):
    folder, _ = real_faces
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match=r"images\[1\].*notes.jpg"):
        face_stack.analyse([folder / "obama.jpg", fake])


def test_bad_face_settings_are_named():
    with pytest.raises(ValueError) as error:
        FaceConfig(backend="opencv", detector="yolo", upsample=5, same_person_threshold=2.0)
    message = str(error.value)
    for expected in ("backend: expected dlib or insightface, got 'opencv'", "detector: expected hog or cnn",
                     "upsample: expected 0, 1, 2 or 3, got 5", "same_person_threshold: expected a cosine"):  # fmt: skip
        assert expected in message


def test_a_missing_face_package_names_the_extra(monkeypatch):
    assert face_stack_installed()  # the dev install has the faces extra
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed: importing it fails
    with pytest.raises(FaceStackMissing, match=r'pip install "magicnaming\[faces\]"') as error:
        load_face_embedder()
    assert "dlib-bin" in str(error.value) and isinstance(error.value, ImportError)


def test_insightface_without_its_models_says_where_it_looked_and_why_nothing_is_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"face\.model_root: no insightface model pack 'buffalo_l'") as error:
        load_face_embedder(FaceConfig(backend="insightface", model_root=str(tmp_path)))
    assert "non-commercial" in str(error.value)
    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "w600k_r50.onnx").write_bytes(b"")
    if not _importable("insightface"):
        with pytest.raises(FaceStackMissing, match="pip install insightface onnxruntime"):
            load_face_embedder(FaceConfig(backend="insightface", model_root=str(tmp_path)))


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
def test_the_faces_command_checks_compares_and_calibrates(real_faces, tmp_path, capsys):
    import shutil

    from namespace.cli import main

    folder, people = real_faces
    Image.new("RGB", (240, 240), (90, 90, 90)).save(tmp_path / "wall.png")
    assert main(["faces", "check", "--images", f"[{folder / 'obama_partial_face.jpg'},{tmp_path / 'wall.png'}]"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "faces=1" in lines[0] and "visible_fraction=0.77" in lines[0]
    assert "faces=0" in lines[1] and "no face found" in lines[1]
    main(["faces", "compare", "--images", f"[{folder / 'obama.jpg'},{folder / 'obama3.jpg'},{folder / 'biden.jpg'}]"])
    out = capsys.readouterr().out
    assert "same person at cosine >= 0.890" in out
    assert "same person       obama.jpg  obama3.jpg" in out and "different people  obama.jpg  biden.jpg" in out
    for name, person in people.items():
        (tmp_path / "people" / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, tmp_path / "people" / person / name)
    main(["faces", "calibrate", "--photos", str(tmp_path / "people")])
    assert capsys.readouterr().out.startswith("threshold 0.889  (same person >= 0.950 over 15 pairs")
    assert main(["faces", "compare", "--images", str(folder / "obama.jpg")]) == 1
    assert "--images: expected at least two photos to compare, got 1" in capsys.readouterr().err


def test_the_faces_command_names_the_extra_when_the_stack_is_missing(real_faces, monkeypatch, capsys):
    from namespace.cli import main

    folder, _ = real_faces
    monkeypatch.setitem(sys.modules, "dlib", None)
    assert main(["faces", "check", "--images", str(folder / "obama.jpg")]) == 1
    assert 'pip install "magicnaming[faces]"' in capsys.readouterr().err
