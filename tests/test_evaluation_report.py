"""The evaluation's table (the paper's Table 1 layout plus the identity columns) and the δ/η trade-off plot."""

import pytest
from PIL import Image

from namespace.inference.evaluation.table import results_table
from namespace.inference.evaluation.tradeoff import plot_tradeoff

RESULTS = {
    "tasks": ["scene", "emotion"],
    "methods": {
        "plain": {
            "clip_ti": {"scene": 31.25, "emotion": 28.0, "all": 29.625},
            "fid": {"scene": None, "emotion": None, "all": None},
            "kid": {"scene": None, "emotion": None, "all": None},
            "reference_similarity": {"all": 0.1234},
            "identity_consistency": {"all": 0.5},
            "face_detection_rate": {"all": 1.0},
        },
        "magicnaming": {
            "clip_ti": {"scene": 30.0, "emotion": 27.5, "all": 28.75},
            "fid": {"scene": 12.34, "emotion": 20.0, "all": 15.0},
            "kid": {"scene": 0.00123, "emotion": float("nan"), "all": 0.002},
            "reference_similarity": {"all": 0.8766},
            "identity_consistency": {"all": 0.9},
            "face_detection_rate": {"all": 0.75},
        },
    },
}


def test_the_table_has_a_row_per_method_and_the_papers_column_groups():
    lines = results_table(RESULTS).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:4] == ["method", "scene: CLIP-TI", "scene: FID", "scene: KID"]
    assert header[7:10] == ["overall: CLIP-TI", "overall: FID", "overall: KID"]
    assert header[10:] == ["reference sim.", "identity consistency", "faces found"]
    plain = [cell.strip() for cell in lines[2].strip("|").split("|")]
    ours = [cell.strip() for cell in lines[3].strip("|").split("|")]
    assert plain == ["plain", "31.2", "–", "–", "28.0", "–", "–", "29.6", "–", "–", "0.123", "0.500", "1.00"]
    assert ours[:4] == ["magicnaming", "30.0", "12.3", "0.00123"] and ours[6] == "–"  # NaN KID: a dash, not "nan"
    assert ours[10:] == ["0.877", "0.900", "0.75"]
    assert len(lines) == 4 and all(len(line.split("|")) == len(lines[0].split("|")) for line in lines)


def test_the_tradeoff_plot_draws_each_setting_and_refuses_none(tmp_path):
    points = [
        {"delta": None, "eta": None, "clip_ti": 28.0, "reference_similarity": 0.8, "default": True},
        {"delta": 2.0, "eta": None, "clip_ti": 25.0, "reference_similarity": 0.9, "default": False},
        {"delta": 0.5, "eta": 10.0, "clip_ti": 30.0, "reference_similarity": 0.5, "default": False},
    ]
    path = plot_tradeoff(points, tmp_path / "tradeoff.png")
    image = Image.open(path)
    assert image.size[0] > 400 and len(image.convert("RGB").getcolors(1 << 16)) > 10  # drawn, not blank
    with pytest.raises(ValueError, match="points: expected at least one setting"):
        plot_tradeoff([], tmp_path / "none.png")


def test_the_report_holds_the_table_the_plot_and_a_grid_per_task(tmp_path):
    from namespace.inference.evaluation.report import markdown_table_html, write_evaluation_report

    html = markdown_table_html(results_table(RESULTS))
    assert html.count("<tr>") == 3 and "<th>magicnaming</th><td class='number'>30.0</td>" in html
    path = write_evaluation_report(
        tmp_path / "report.html", RESULTS, {"scene": "grids/scene.png"}, "tradeoff.png", "magicnaming evaluate", ["n1"]
    )
    text = path.read_text()
    assert "<img src='tradeoff.png'" in text and "<h2>Task: scene</h2>" in text and "<img src='grids/scene.png'" in text
    assert "<p class='note'>n1</p>" in text and "<code>magicnaming evaluate</code>" in text
