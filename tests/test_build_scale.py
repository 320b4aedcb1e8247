"""The scale benchmark (benchmarks/build_scale.py): its world, its memory measurement, and a tiny run."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from build_scale import measure  # noqa: E402
from scale_world import FILTERS, WorldSize, caption_table, person_names, write_images  # noqa: E402


def test_world_names_each_photo_once_and_fills_up_with_distractors(tmp_path):
    size = WorldSize(photos=250, rows_per_photo=10, photos_per_person=60)
    table = caption_table(size, "http://127.0.0.1:9/")
    assert table.num_rows == 2500 and size.people == 4
    names = person_names(size.people)
    assert len(set(names)) == 4 and all(len(name.split()) == 2 for name in names)
    photo_rows = table.filter(pc.invert(pc.match_substring_regex(table["URL"], "/(filtered|distractor)/")))
    assert photo_rows.num_rows == 250 and len(set(photo_rows["URL"].to_pylist())) == 250
    # every photo's caption names the person of its file (PERSON-VARIANT.jpg)
    for url, text in zip(photo_rows["URL"].to_pylist(), photo_rows["TEXT"].to_pylist(), strict=True):
        assert names[int(url.rsplit("/", 1)[1][:5])] in text
    # the filtered rows name someone and fail exactly one filter each; no distractor names anyone
    filtered = table.filter(pc.match_substring(table["URL"], "/filtered/"))
    assert filtered.num_rows == 50
    failing = sum(np.asarray(filtered[column]) == value for column, value in FILTERS.values())
    assert failing.tolist() == [1] * 50
    distractors = table.filter(pc.match_substring(table["URL"], "/distractor/"))["TEXT"].to_pylist()
    assert len(distractors) == 2200 and not any(name in text for text in distractors for name in names)

    images = write_images(tmp_path, size, processes=2)
    files = sorted(p.name for p in images.iterdir())
    assert len(files) == 250 and files[0] == "00000-000.jpg" and files[-1] == "00003-061.jpg"
    (images / files[0]).unlink()  # a finished image folder is reused as it is
    assert write_images(tmp_path, size) == images and len(list(images.iterdir())) == 249


def test_measure_sees_reaped_children_and_the_live_tree(tmp_path):
    # a child holding 200 MiB, then two children holding 120 MiB each at once
    script = textwrap.dedent("""
        import subprocess, sys
        hold = "b = bytearray({size} * 2**20); import time; time.sleep(1.0)"
        subprocess.run([sys.executable, "-c", hold.format(size=200)], check=True)
        pair = [subprocess.Popen([sys.executable, "-c", hold.format(size=120)]) for _ in range(2)]
        assert all(p.wait() == 0 for p in pair)
    """)
    figures = measure([sys.executable, "-c", script], tmp_path / "log.txt")
    assert figures["max_process_rss_mib"] >= 200  # wait4's rusage covers the reaped grandchildren
    assert figures["max_process_rss_mib"] < 300  # ... each on its own, not summed
    assert figures["tree_pss_mib"] >= 240  # the sampler sums the two live children
    assert figures["peak_rss_mib"] == max(figures["max_process_rss_mib"], figures["tree_pss_mib"])
    assert figures["seconds"] >= 2.0


@pytest.mark.slow
def test_benchmark_reports_each_stage_at_each_size(tmp_path):
    """Two tiny sizes through the match stage (the whole build is the benchmark's own run, minutes long), with a
    relative --work and --json: each stage runs from its own log folder, yet they name the current folder's."""
    result_path = tmp_path / "scale.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "build_scale.py"), "--sizes", "1,2", "--base_photos", "120",
               "--rows_per_photo", "5", "--until", "match", "--work", "work", "--json", "scale.json"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)  # ~40 s on 2 idle cores
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scale.json", "work"]
    assert (tmp_path / "work/build-2x/work/match/_stage.json").is_file()
    result = json.loads(result_path.read_text())
    assert [(s["scale"], s["photos"], s["caption_rows"], s["people"]) for s in result["sizes"]] == [
        (1, 120, 600, 2),
        (2, 240, 1200, 4),
    ]
    for size in result["sizes"]:
        assert list(size["stages"]) == ["sample", "names", "match"]
        for figures in size["stages"].values():
            assert figures["seconds"] > 0 and figures["peak_rss_mib"] > 20
            assert np.isclose(figures["seconds_per_photo"], figures["seconds"] / size["photos"])
        funnel = size["summaries"]["match"]["funnel"]
        assert funnel["rows"] == size["caption_rows"] and funnel["matched"] == size["photos"]
        assert size["peak_rss_mib"] == max(f["peak_rss_mib"] for f in size["stages"].values())
    small, large = result["sizes"]
    assert np.isclose(result["peak_rss_ratio"], large["peak_rss_mib"] / small["peak_rss_mib"])
    assert np.isclose(result["seconds_per_photo_ratio"], large["seconds_per_photo"] / small["seconds_per_photo"])
    assert set(result["stage_ratios"]) == {"sample", "names", "match"}
    assert result["meets_goal"] == (result["peak_rss_ratio"] <= 1.5 and result["seconds_per_photo_ratio"] <= 1.5)
    assert "match" in run.stdout and "s/photo ratio" in run.stdout  # the table
