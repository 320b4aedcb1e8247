"""``magicnaming evaluate`` end to end on the full-size code path, offline: the tiny SDXL pipeline and encoder,
IP-Adapter with random weights (plumbing only), real reference photos scored by the face stack, CLIP-TI with a tiny
open_clip model that has the real tokenizer, FID/KID on a tiny tower's features; resumed without redrawing; a finished
evaluation refused without --overwrite; images reused by content, not by path; bad input refused before anything is
drawn."""

import json

import pytest
from PIL import Image

from namespace.cli import main
from namespace.testing.ip_adapter import RANDOM_WEIGHT_NAME

from .conftest import evaluation_folder, html_facts, says


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_faces, tiny_models):
    tasks = {"scene": ["a photo of {person} on a beach"], "emotion": ["a photo of {person} smiling"]}
    ip_adapter = {"weights": str(tiny_models.ip_adapter), "weight_name": RANDOM_WEIGHT_NAME, "scale": 1.0}
    return evaluation_folder(
        tmp_path_factory.mktemp("evaluate"), real_faces, tiny_models, tasks, seeds=[0, 1],
        methods=["plain", "ip_adapter", "magicnaming"], sweep={"delta": [0.5], "eta": []}, ip_adapter=ip_adapter,
        batch_size=4,
    )  # fmt: skip


@pytest.mark.slow
def test_evaluate_writes_every_metric_and_resumes(setup):
    output = setup / "out"
    assert main(["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(output)]) == 0
    results = json.loads((output / "results.json").read_text())
    assert set(results["methods"]) == {"plain", "ip_adapter", "magicnaming"} and results["people"] == ["biden", "obama"]
    assert results["images"] == 2 * 2 * 2 * (1 + 1 + 2)  # people × prompts × seeds × (plain, ip_adapter, 2 settings)
    assert results["scorers"] == {"text_image": "MagicNaming-Tiny-TI", "identity": "face",
                                  "distance_features": "MagicNaming-Tiny-L"}  # fmt: skip
    for name, method in results["methods"].items():
        assert set(method["clip_ti"]) == {"scene", "emotion", "all"}
        assert -100 <= method["clip_ti"]["all"] <= 100
        # random tiny models draw no face: the face stack finds none, so there is no similarity to report
        assert method["face_detection_rate"]["all"] == 0.0 and method["reference_similarity"]["all"] is None
        assert (method["fid"]["all"] is None) == (method["kid"]["all"] is None) == (name == "plain")
    assert results["methods"]["magicnaming"]["fid"]["all"] > 0
    assert len(results["sweep"]) == 2 and results["settings"]["sweep"]["delta"] == [0.5]
    table = (output / "table.md").read_text()  # the figures, then their spread over seeds
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 2 * 5  # two tables: header, rule, three methods
    assert says(table, "2 seeds")
    assert sum(" ± " in row for row in rows) == 3  # CLIP-TI per method over seeds (no face: no similarity)
    assert {p.name for p in (output / "grids").iterdir()} == {"scene.png", "emotion.png"}
    report = html_facts((output / "report.html").read_text())
    assert {"grids/scene.png", "grids/emotion.png"} <= set(report.images)
    assert any("emotion" in heading for heading in report.headings)
    assert not (output / "tradeoff.png").exists()  # no face in any image: no similarity to plot against CLIP-TI
    pngs = sorted(output.glob("images/**/*.png"))
    assert len(pngs) == results["images"] and all(p.with_suffix(".json").is_file() for p in pngs)
    assert results["reused_images"] == []
    stamps = {p: p.stat().st_mtime_ns for p in pngs}
    (output / "results.json").unlink()  # as a run killed before its end leaves it: an unfinished evaluation
    assert main(["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(output)]) == 0
    assert {p: p.stat().st_mtime_ns for p in pngs} == stamps  # resumed: nothing redrawn
    resumed = json.loads((output / "results.json").read_text())
    assert resumed["methods"] == results["methods"]
    assert sorted(resumed["reused_images"]) == [str(p.relative_to(output)) for p in pngs]  # every image reused


def test_bad_input_is_refused_before_anything_is_drawn(setup, tmp_path, capsys):
    (tmp_path / "nobody").mkdir()
    (tmp_path / "empty.yaml").write_text("tasks: {}\n")
    args = ["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(tmp_path / "out")]
    assert main([*args, "--suite", str(tmp_path / "empty.yaml"), "--reference_folders", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "--suite" in error and "--references[0].photos" in error
    assert not (tmp_path / "out" / "images").exists()


def test_a_person_without_a_face_in_any_reference_photo_is_refused_before_drawing(setup, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "people" / "wall").mkdir(parents=True)
    Image.new("RGB", (200, 200), (120, 120, 120)).save(tmp_path / "people" / "wall" / "wall.png")
    args = ["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(tmp_path / "out")]
    assert main([*args, "--reference_folders", str(tmp_path / "people"), "--methods", "[plain, magicnaming]"]) == 1
    assert "--references[0] (wall): no face found in any of its 1 reference photos" in capsys.readouterr().err
    assert not (tmp_path / "out" / "images").exists()


def evaluate(setup, output, *more):
    return main(["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(output), *more])


@pytest.mark.slow
def test_a_finished_evaluation_or_another_folder_is_refused_without_overwrite(setup, tmp_path, capsys):
    cheap = ["--methods", "[plain]", "--sweep.delta", "[]", "--seeds", "[0]"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert evaluate(setup, other, *cheap) == 1
    error = capsys.readouterr().err
    assert f"--output: expected a new folder, {str(other)!r} already exists (a non-empty folder)" in error
    assert "--overwrite" in error and not (other / "images").exists()
    output = tmp_path / "out"
    assert evaluate(setup, output, *cheap) == 0
    finished = (output / "results.json").read_text()
    assert evaluate(setup, output, *cheap) == 1 and "--output: expected a new folder" in capsys.readouterr().err
    assert (output / "results.json").read_text() == finished
    assert evaluate(setup, output, *cheap, "--seeds", "[0, 1]", "--overwrite", "true") == 0
    replaced = json.loads((output / "results.json").read_text())
    assert replaced["settings"]["seeds"] == [0, 1] and replaced["images"] == 2 * 2 * 2  # people × prompts × seeds
    assert len(replaced["reused_images"]) == 2 * 2  # seed 0's images: the same settings, the same content


@pytest.mark.slow
def test_an_encoder_re_exported_into_the_same_folder_is_not_reused(setup, tmp_path, tiny_pipe):
    from namespace.testing import tiny_name_encoder

    encoder, output = tmp_path / "encoder", tmp_path / "out"
    tiny_name_encoder(tiny_pipe, seed=0).save_pretrained(encoder)
    cheap = ["--methods", "[plain, magicnaming]", "--sweep.delta", "[]", "--seeds", "[0]", "--encoder", str(encoder)]
    assert evaluate(setup, output, *cheap) == 0
    first = sorted(output.glob("images/magicnaming/**/*.png"))
    pixels = {path: Image.open(path).tobytes() for path in first}
    tiny_name_encoder(tiny_pipe, seed=1).save_pretrained(encoder)  # other weights, the same path and δ/η settings
    assert evaluate(setup, output, *cheap, "--overwrite", "true") == 0
    results = json.loads((output / "results.json").read_text())
    assert sorted(results["reused_images"]) == sorted(
        str(p.relative_to(output)) for p in output.glob("images/plain/**/*.png"))  # fmt: skip
    assert sorted(output.glob("images/magicnaming/**/*.png")) == first  # the same files, drawn again
    assert all(Image.open(path).tobytes() != pixels[path] for path in first)
