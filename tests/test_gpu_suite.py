"""benchmarks/gpu_suite.py: the whole suite on the tiny offline models on a CPU (the path CI can run), its JSON, its
README rows, its refusal without CUDA, and a failing part recorded without stopping the suite."""

import datetime
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.py"


def load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


suite = load_suite()


def run_script(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MAGICNAMING_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, env=environment, cwd=cwd
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole suite, tiny, on the CPU, as a user would run it (about 20 s), from an empty folder and without
    --json: (its process, its JSON, the JSON's path)."""
    here = tmp_path_factory.mktemp("here")
    done = run_script("--device", "cpu", "--tiny", "true", "--peak_tflops", "0.05", "--markdown", "true", cwd=here)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = [line for line in done.stderr.splitlines() if line.startswith("suite: ") and " → " in line]
    path = Path(summary[-1].rsplit(" → ", 1)[1])  # the summary line names the JSON
    assert list(here.iterdir()) == []  # nothing written where it was started
    assert path.name == "gpu_suite.json" and path.parent.name.startswith("gpu_suite-")
    assert path.is_absolute() and path.is_relative_to(tempfile.gettempdir()) and not path.is_relative_to(ROOT)
    yield done, json.loads(path.read_text()), path
    shutil.rmtree(path.parent)


@pytest.mark.slow
def test_the_json_holds_every_figure_as_a_positive_number(tiny_run):
    _, report, _ = tiny_run
    assert report["suite"] == "gpu_suite" and report["size"] == "tiny" and report["device"] == "cpu"
    assert report["versions"]["torch"] == metadata.version("torch")
    assert report["versions"]["diffusers"] and report["versions"]["magicnaming"] and report["device_name"]
    datetime.datetime.fromisoformat(report["date"])
    assert list(report["parts"]) == list(suite.PARTS)
    for name, part in report["parts"].items():
        assert part["status"] == "ok", (name, part.get("error"))
        assert part["seconds"] > 0
        assert set(part["figures"]) == set(suite.FIGURES[name]), name
        for key, value in part["figures"].items():
            assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (name, key, value)


@pytest.mark.slow
def test_the_figures_agree_with_each_other(tiny_run):
    _, report, _ = tiny_run
    towers = report["parts"]["towers"]["figures"]
    assert towers["peak_tflops"] == 0.05  # --peak_tflops reaches the towers' part
    assert towers["share_of_flop_limit"] == pytest.approx(towers["achieved_tflops"] / 0.05, rel=0.01)
    assert towers["flop_limit_images_per_second"] == pytest.approx(0.05 * 1000 / towers["gflops_per_image"], rel=0.01)
    assert towers["achieved_tflops"] == pytest.approx(
        towers["images_per_second"] * towers["gflops_per_image"] / 1000, rel=0.01
    )
    training = report["parts"]["training"]["figures"]
    ratio = training["cached_photos_per_second"] / training["streaming_photos_per_second"]
    assert training["cached_over_streaming"] == pytest.approx(ratio, abs=0.06)
    plugin = report["parts"]["plugin_overhead"]
    assert plugin["result"]["repeats"] == suite.TINY["plugin_overhead"]["repeats"]
    assert plugin["figures"]["plain_seconds_per_image"] == plugin["result"]["seconds_per_image_median"]["plain"]


@pytest.mark.slow
def test_markdown_rows_carry_the_json_figures(tiny_run):
    done, report, path = tiny_run
    training = report["parts"]["training"]["figures"]
    towers = report["parts"]["towers"]["figures"]
    plugin = report["parts"]["plugin_overhead"]["figures"]
    assert f"| plain pipeline | {plugin['plain_seconds_per_image']:,.3f} | 1 |" in done.stdout
    assert f"| MagicNaming | {plugin['magicnaming_seconds_per_image']:,.3f} |" in done.stdout
    assert f"| {training['cached_photos_per_second']:,.1f} | {training['streaming_photos_per_second']:,.1f} |" in (
        done.stdout
    )
    assert f"{100 * towers['share_of_flop_limit']:,.1f}% |" in done.stdout
    assert report["device_name"] in done.stdout and report["versions"]["diffusers"] in done.stdout
    again = run_script("--from_json", str(path))  # the rows of an earlier run, nothing measured
    assert again.returncode == 0 and again.stdout == done.stdout


def test_refuses_a_full_size_run_without_cuda():
    with pytest.raises(ValueError, match=r"--device cuda: no CUDA device.*--device cpu --tiny true"):
        suite.check_device("cuda", tiny=False, cuda_available=False)
    with pytest.raises(ValueError, match=r"--device cpu: expected --tiny true"):
        suite.check_device("cpu", tiny=False, cuda_available=True)
    suite.check_device("cpu", tiny=True, cuda_available=False)
    suite.check_device("cuda", tiny=False, cuda_available=True)
    done = run_script("--device", "cpu")  # refused before any model is built
    assert done.returncode == 2 and "--device cpu: expected --tiny true" in done.stderr


@pytest.mark.slow
def test_a_failing_part_is_recorded_and_the_next_one_runs(tiny_run):
    def broken() -> dict:
        return {"width": (torch.ones(2, 3) @ torch.ones(2, 3)).shape}  # a real shape error

    failed = suite.run_part("towers", broken)
    assert failed["status"] == "failed" and "RuntimeError" in failed["error"] and "figures" not in failed
    assert failed["seconds"] >= 0
    _, report, _ = tiny_run
    after = suite.run_part("training", lambda: report["parts"]["training"]["result"])
    assert after["status"] == "ok" and after["figures"] == report["parts"]["training"]["figures"]
    rows = suite.markdown({**report, "parts": {"towers": {"settings": {}, **failed}}})
    assert "**towers**: failed (RuntimeError:" in rows


def test_the_full_plan_measures_what_the_readme_reports():
    plugin = suite.part_settings("plugin_overhead", tiny=False, device="cuda", peak_tflops=None)
    assert (plugin["size"], plugin["image_size"], plugin["dtype"], plugin["device"]) == ("full", 1024, "fp16", "cuda")
    towers = suite.part_settings("towers", tiny=False, device="cuda", peak_tflops=756.5)
    assert (towers["size"], towers["dtype"], towers["peak_tflops"]) == ("full", "fp16", 756.5)  # --dtype's name
    training = suite.part_settings("training", tiny=False, device="cuda", peak_tflops=None)
    assert (training["size"], training["accelerator"], training["precision"]) == ("full", "gpu", "bf16-mixed")
    assert training["photos"] // 256 >= training["workers"]  # a shard of 256 photos for every streaming worker
    assert all(settings["budget_s"] > 0 for settings in suite.FULL.values())
