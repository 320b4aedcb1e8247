"""The evaluation's table (the paper's Table 1 layout plus the identity columns) and the δ/η trade-off plot."""

import pytest
from PIL import Image

from namespace.inference.evaluation.table import results_table
from namespace.inference.evaluation.tradeoff import plot_tradeoff

from .conftest import html_facts, says

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


def test_the_spread_over_seeds_follows_the_table():
    from namespace.inference.evaluation.report import markdown_table_html
    from namespace.seed_spread import over_seeds

    spread = {
        "plain": {"clip_ti": over_seeds([29.0, 30.25]), "reference_similarity": over_seeds([0.1, 0.15])},
        "magicnaming": {"clip_ti": over_seeds([28.0, 29.5]), "reference_similarity": over_seeds([0.85, 0.9]),
                        "identity_consistency": over_seeds([0.9, 0.9])},
    }  # fmt: skip
    markdown = results_table(RESULTS | {"spread": spread})
    assert says(markdown, "2 seeds", "mean", "standard deviation")  # the line between the tables says what it holds
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()[-4:]]
    assert rows[0] == ["method", "CLIP-TI", "reference sim.", "identity consistency"]
    assert rows[2] == ["plain", "29.6 ± 0.9", "0.125 ± 0.035", "–"]
    assert rows[3] == ["magicnaming", "28.8 ± 1.1", "0.875 ± 0.035", "0.900 ± 0.000"]
    page = html_facts(markdown_table_html(markdown))  # both tables and the line between them
    assert [row[0] for row in page.rows] == ["method", "plain", "magicnaming", "method", "plain", "magicnaming"]
    assert "2 seeds" in page.text and ["magicnaming", "28.8 ± 1.1", "0.875 ± 0.035", "0.900 ± 0.000"] in page.rows


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

    table = html_facts(markdown_table_html(results_table(RESULTS)))
    assert [row[0] for row in table.rows] == ["method", "plain", "magicnaming"] and table.rows[2][1] == "30.0"
    path = write_evaluation_report(
        tmp_path / "report.html", RESULTS, {"scene": "grids/scene.png"}, "tradeoff.png", "magicnaming evaluate", ["n1"]
    )
    page = html_facts(path.read_text())
    assert set(page.images) == {"tradeoff.png", "grids/scene.png"}
    assert any("scene" in heading for heading in page.headings)  # the task's grid under a heading naming it
    assert "n1" in page.text and "magicnaming evaluate" in page.text  # the notes and the command that made it
    assert page.rows[-1][:4] == ["magicnaming", "30.0", "12.3", "0.00123"]


@pytest.mark.parametrize("killed_in", ["table.md", "report.html"])
def test_a_run_killed_while_writing_leaves_no_results_and_no_partial_file(tmp_path, monkeypatch, killed_in):
    """results.json is written last and every text file atomically: a killed run leaves no folder that loads."""
    from pathlib import Path

    from namespace.inference.evaluation.run import write_outputs

    results = RESULTS | {"sweep": [], "notes": [], "settings": {}}
    original = Path.write_text

    class Killed(BaseException):
        pass

    def half_then_killed(self, text, *args, **kwargs):
        if self.name == killed_in or self.name.startswith(f".{killed_in}.tmp"):  # in place, or its temporary name
            original(self, text[: len(text) // 2])
            raise Killed
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half_then_killed)
    with pytest.raises(Killed):
        write_outputs(results, [], tmp_path, "magicnaming evaluate ...")
    monkeypatch.undo()
    left = sorted(path.name for path in tmp_path.rglob("*") if path.is_file())
    assert "results.json" not in left and killed_in not in left and not [name for name in left if name[0] == "."]
    write_outputs(results, [], tmp_path, "magicnaming evaluate ...")  # the resumed run finishes
    assert {"results.json", "table.md", "report.html"} <= {path.name for path in tmp_path.iterdir()}
