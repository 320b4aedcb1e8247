"""``magicnaming evaluate`` over several processes (issue 24): two CPU processes, spawned by ``--devices`` or started
by ``torchrun``, draw and score exactly what one process does (results.json, every PNG and its settings), on the tiny
setup of ``test_evaluate_command.py``; images an earlier run drew are reported as reused; bad ``--devices`` refused
before anything loads; a failed drawing process fails the command with its error."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from namespace.cli import main
from namespace.inference.evaluation.sharing import Share, _raised, check_devices, torchrun_share
from namespace.testing.ip_adapter import RANDOM_WEIGHT_NAME

from .conftest import evaluation_folder, free_port


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_faces, tiny_models):
    """Two people's real photos, a two-prompt suite, and a config of the three methods at 2 steps, 2 seeds."""
    tasks = {"scene": ["a photo of {person} on a beach"], "emotion": ["a photo of {person} smiling"]}
    ip_adapter = {"weights": str(tiny_models.ip_adapter), "weight_name": RANDOM_WEIGHT_NAME, "scale": 1.0}
    return evaluation_folder(
        tmp_path_factory.mktemp("evaluate-processes"), real_faces, tiny_models, tasks, seeds=[0, 1],
        methods=["plain", "magicnaming", "ip_adapter"], ip_adapter=ip_adapter,
        batch_size=3,  # 4 images per method and person: batches of 3 and 1, so the shares are uneven
        check_faces=False,  # the face stack's warnings about the photos: seconds per process, nothing checked here
    )  # fmt: skip


def evaluate(setup, output, *more):
    return main(["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(output), *more])


@pytest.fixture(scope="module")
def one_process(setup):
    """The evaluation drawn and scored by one process: the reference."""
    output = setup / "one-process"
    assert evaluate(setup, output) == 0
    return output


def files(output, pattern):
    return {str(path.relative_to(output)): path.read_bytes() for path in sorted(output.glob(pattern))}


def results(output):
    values = json.loads((output / "results.json").read_text())
    values["settings"].pop("devices")  # how it ran, the one setting that may differ
    seconds = values.pop("seconds_per_identity")  # timings: every person of every method, whichever process drew it
    assert seconds["magicnaming"] or values["reused_images"]  # the encoder timed once per person it made
    assert all(sorted(people) in ([], sorted(values["people"])) for people in seconds.values()), seconds
    return values


def assert_same_evaluation(output, reference):
    """results.json's figures, every image, its settings beside it and every grid are one process's."""
    assert results(output) == results(reference)
    pngs = files(output, "**/*.png")
    assert len(pngs) == 3 * 2 * 2 * 2 + 2  # methods × people × prompts × seeds, and a grid per task
    assert pngs == files(reference, "**/*.png")
    assert files(output, "images/**/*.json") == files(reference, "images/**/*.json")
    assert (output / "table.md").read_text() == (reference / "table.md").read_text()


@pytest.mark.slow
def test_two_spawned_processes_give_one_processs_evaluation(setup, one_process, tmp_path, capsys):
    output = tmp_path / "two"
    capsys.readouterr()
    assert evaluate(setup, output, "--devices", "[cpu, cpu]") == 0
    assert "drawing over 2 processes (cpu, cpu)" in capsys.readouterr().err
    assert json.loads((output / "results.json").read_text())["settings"]["devices"] == ["cpu", "cpu"]
    assert_same_evaluation(output, one_process)
    assert results(output)["reused_images"] == []  # every image drawn by this run (by a child)


@pytest.mark.slow
def test_torchrun_shares_the_drawing_and_rank_0_scores(setup, one_process, tmp_path):
    output = tmp_path / "torchrun"
    earlier = sorted(p for p in one_process.glob("images/magicnaming/**/*") if p.is_file())  # an earlier run's
    for path in earlier:
        (output / path.relative_to(one_process)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, output / path.relative_to(one_process))
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "namespace.cli", "evaluate",
               "--config", str(setup / "eval.yaml"), "--output", str(output)]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]  # every rank exited 0
    assert run.stderr.count("evaluation written to") == run.stderr.count("[1/5]") == 1  # rank 0's steps only
    written = results(output)
    assert sorted(written["reused_images"]) == [str(p.relative_to(one_process)) for p in earlier if p.suffix == ".png"]
    written["reused_images"] = []
    assert written == results(one_process)
    pngs = files(output, "**/*.png")
    assert pngs == files(one_process, "**/*.png") and len(pngs) == 3 * 2 * 2 * 2 + 2
    assert files(output, "images/**/*.json") == files(one_process, "images/**/*.json")


@pytest.mark.slow
def test_a_failed_drawing_process_fails_the_command_with_its_error(setup, tmp_path, capsys):
    capsys.readouterr()
    assert evaluate(setup, tmp_path / "out", "--devices", "[cpu, cuda:99]") == 1  # cuda:99 parses, exists nowhere
    error = capsys.readouterr().err
    assert "--devices[1] (cuda:99): its drawing process failed" in error
    assert not (tmp_path / "out" / "results.json").exists()


def test_bad_devices_are_refused_before_anything_loads(setup, tmp_path, capsys):
    capsys.readouterr()
    for devices, expected in [("[]", "got an empty list"), ("[cpu, gpu0]", "torch can parse (cpu, cuda, cuda:1, ...), "
                                                                          "got ['gpu0']")]:  # fmt: skip
        assert evaluate(setup, tmp_path / "out", "--devices", devices) == 1
        error = capsys.readouterr().err
        assert "--devices: " in error and expected in error
        assert not (tmp_path / "out").exists()


def test_the_torchrun_environment_names_each_processs_share(monkeypatch):
    assert torchrun_share("cpu") is None  # not under torchrun
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert torchrun_share("cpu") == Share(1, 2, "cpu", torchrun=True)
    assert Share(1, 2, "cpu").label == "2/2 on cpu" and Share(0, 1, "cpu").label == ""
    with pytest.raises(ValueError, match=r"--devices: this process was started by torchrun \(WORLD_SIZE=2\)"):
        check_devices(["cpu", "cpu"])
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert torchrun_share("cpu") is None and check_devices(["cuda:0", "cuda:1"]) is None


def test_a_childs_error_is_its_exception_without_the_frames():
    traceback = ('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\n    ^^^\n'
                 "ValueError: 2 problems:\n  --seeds: empty\n  --suite: none\n")  # fmt: skip
    assert _raised(traceback) == "ValueError: 2 problems:\n  --seeds: empty\n  --suite: none"
