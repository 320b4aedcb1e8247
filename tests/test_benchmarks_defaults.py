"""Every benchmark's default invocation works from any folder and writes nothing into the current folder (nor the
repository): its parser's path defaults are absolute, and build_scale makes a relative --work absolute before any
stage (each run from its own log folder) sees it."""

import argparse
import importlib
import subprocess
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
    assert len(SCRIPTS) == 9 and "build_scale" in SCRIPTS and "gpu_suite" in SCRIPTS


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


# -- one command-line style (benchmarks/flags.py): snake_case flags, --dtype, booleans as --flag true|false ----------

# script → (old spelling, new spelling, a value, the value parsed); no old spelling is kept as an alias
RENAMED = {
    "build_scale": [("--base-photos", "--base_photos", "120", 120), ("--rows-per-photo", "--rows_per_photo", "5", 5),
                    ("--photos-per-person", "--photos_per_person", "30", 30),
                    ("--image-size", "--image_size", "16", 16)],
    "feature_extraction": [("--precision", "--dtype", "bf16", "bf16"),
                           ("--peak-tflops", "--peak_tflops", "989.4", 989.4)],
    "gpu_suite": [("--peak-tflops", "--peak_tflops", "1.5", 1.5), ("--from-json", "--from_json", "r.json", "r.json")],
    "name_matching": [("--non-ascii-share", "--non_ascii_share", "0.1", 0.1)],
    "plugin_overhead": [("--image-size", "--image_size", "32", 32)],
    "training_cache_memory": [("--val-batches", "--val_batches", "3", 3)],
    "training_throughput": [("--cached-batch", "--cached_batch", "8", 8),
                            ("--precision", "--dtype", "bf16-mixed", "bf16-mixed")],
}  # fmt: skip
# script → its boolean flags (each was a store_true switch), and another of its flags with a value
BOOLEANS = {"face_throughput": ["--cnn"], "gpu_suite": ["--tiny", "--markdown"],
            "training_throughput": ["--random_cache_features"]}  # fmt: skip
OTHER = {
    "face_throughput": ["--repeats", "1"],
    "gpu_suite": ["--json", "x.json"],
    "training_throughput": ["--steps", "2"],
}


def parse(script: str, argv: list[str]):
    return importlib.import_module(script).build_parser().parse_args(argv)


def refusal(script: str, argv: list[str], capsys) -> str:
    """The error line a user sees for ``argv`` (argparse's usage error: exit status 2)."""
    with pytest.raises(SystemExit) as exited:
        parse(script, argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_help_lists_only_snake_case_flags(script, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(script, ["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    actions = importlib.import_module(script).build_parser()._actions
    flags = {action.option_strings[-1] for action in actions}
    assert all(a.option_strings[-1] in shown for a in actions if a.help != argparse.SUPPRESS)  # --child: internal
    assert [flag for flag in flags if "-" in flag[2:]] == []  # snake_case only
    for flag in BOOLEANS.get(script, []):
        assert f"{flag} {{true,false}}" in shown  # a boolean shows the value it takes, as jsonargparse's do


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_help_runs_as_a_user_runs_it(script, tmp_path):
    """``python benchmarks/SCRIPT.py --help`` from another folder (the scripts import their siblings, flags.py)."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {script}.py") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("script", "old", "new", "value", "parsed"),
                         [(script, *row) for script, rows in RENAMED.items() for row in rows])  # fmt: skip
def test_renamed_flags_parse_and_the_old_spelling_is_refused_by_name(script, old, new, value, parsed, capsys):
    assert getattr(parse(script, [new, value]), new[2:]) == parsed
    assert getattr(parse(script, [f"{new}={value}"]), new[2:]) == parsed
    for argv in ([old, value], [f"{old}={value}"]):
        error = refusal(script, argv, capsys)
        assert f"argument {old}: expected {new}" in error


def test_one_dtype_option():
    """``--dtype`` everywhere (plugin_overhead's name; ``--precision`` before in feature_extraction and
    training_throughput): fp32, fp16 or bf16 for the models' weights; training_throughput's is the Trainer's
    precision, in Lightning's values (32-true, 16-mixed, bf16-mixed) as ``magicnaming train --trainer.precision``."""
    for script in SCRIPTS:
        actions = {action.dest: action for action in importlib.import_module(script).build_parser()._actions}
        assert "precision" not in actions
        if script in ("feature_extraction", "plugin_overhead"):
            assert actions["dtype"].choices == ("fp32", "fp16", "bf16") and actions["dtype"].default == "fp32"
    assert parse("training_throughput", []).dtype == "32-true"


@pytest.mark.parametrize(("script", "flag"), [(script, flag) for script, flags in BOOLEANS.items() for flag in flags])
def test_booleans_take_true_or_false_and_a_bare_switch_is_refused_by_name(script, flag, capsys):
    dest = flag[2:]
    assert getattr(parse(script, []), dest) is False
    assert getattr(parse(script, [flag, "true"]), dest) is True
    assert getattr(parse(script, [flag, "False"]), dest) is False
    assert getattr(parse(script, [f"{flag}=true"]), dest) is True
    for argv in ([flag], [flag, *OTHER[script]]):  # bare, at the end or before another flag
        error = refusal(script, argv, capsys)
        assert f"argument {flag}: expected {flag} true or {flag} false" in error
    assert f"argument {flag}: expected true or false, got 'yes please'" in refusal(script, [flag, "yes please"], capsys)
    kebab = flag.replace("_", "-")
    if kebab != flag:
        assert f"argument {kebab}: expected {flag} true or {flag} false" in refusal(script, [kebab, "true"], capsys)
