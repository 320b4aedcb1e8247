"""Every benchmark's default invocation works from any folder and writes nothing into the current folder (nor the
repository): its parser's path defaults are absolute, and build_scale makes a relative --work absolute before any
stage (each run from its own log folder) sees it."""

import importlib
import sys
import tempfile
from pathlib import Path, PurePath

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import their siblings (scale_world) by name
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in path.read_text())


def path_like(value: object) -> bool:
    """A default that names a file or folder: a Path, or a string with a folder separator or a file suffix."""
    if isinstance(value, PurePath):
        return True
    return isinstance(value, str) and ("/" in value or PurePath(value).suffix != "")


def test_every_script_is_covered():
    assert len(SCRIPTS) == 8 and "build_scale" in SCRIPTS and "gpu_suite" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_path_defaults_are_absolute_and_outside_the_repository(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    defaults = vars(importlib.import_module(script).build_parser().parse_args([]))  # types applied, as a user gets
    paths = {name: Path(value) for name, value in defaults.items() if path_like(value)}
    assert [name for name, path in paths.items() if not path.is_absolute()] == []
    # inside the repository only an input it reads (configs/...), never a place it writes
    inside = {name: path for name, path in paths.items() if path.is_relative_to(ROOT)}
    assert all(path.is_file() for path in inside.values()), inside
    assert list(tmp_path.iterdir()) == []  # building the parser made nothing here


def test_build_scale_resolves_relative_paths_before_any_stage(tmp_path, monkeypatch):
    build_scale = importlib.import_module("build_scale")
    here = tmp_path.resolve()
    monkeypatch.chdir(here)
    (here / "scale.yaml").write_text((ROOT / "configs/data/scale.yaml").read_text())
    args = build_scale.parse_args(["--work", "work", "--json", "figures.json", "--config", "scale.yaml"])
    assert (args.work, args.json, args.config) == (here / "work", here / "figures.json", here / "scale.yaml")
    # the stage's process runs from its log folder: the paths it is handed name the same places from there
    command = build_scale.stage_command("match", args.work / "build-1x", args.work / "build-1x.yaml")
    assert command[-4:] == ["--output", str(here / "work/build-1x"), "--config", str(here / "work/build-1x.yaml")]
    with pytest.raises(AssertionError):  # a relative path can no longer reach a stage
        build_scale.stage_command("match", Path("work/build-1x"), args.config)
    assert build_scale.parse_args([]).work == build_scale.DEFAULT_WORK and build_scale.DEFAULT_WORK.is_absolute()
    assert list(here.iterdir()) == [here / "scale.yaml"]  # parsing wrote nothing


def test_build_scale_reports_a_missing_config_as_typed(tmp_path, monkeypatch, capsys):
    build_scale = importlib.import_module("build_scale")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        build_scale.parse_args(["--config", "missing.yaml"])
    assert "--config: 'missing.yaml' does not exist" in capsys.readouterr().err


def test_gpu_suite_writes_its_default_json_into_a_new_temporary_folder(tmp_path, monkeypatch):
    gpu_suite = importlib.import_module("gpu_suite")
    monkeypatch.chdir(tmp_path)
    first, second = gpu_suite.json_destination(None), gpu_suite.json_destination(None)
    try:
        assert first.parent != second.parent and first.parent.is_dir() and list(first.parent.iterdir()) == []
        assert first.is_absolute() and first.is_relative_to(tempfile.gettempdir()) and first.name == "gpu_suite.json"
        assert not first.is_relative_to(ROOT) and list(tmp_path.iterdir()) == []
    finally:
        first.parent.rmdir()
        second.parent.rmdir()
    assert gpu_suite.json_destination("mine.json") == Path("mine.json")  # --json as the user gave it
