"""``magicnaming demo`` on its smallest setting: the report, metrics.json, encoder/ and identity files; bad input."""

import csv
import json
import re
import shlex
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from namespace import Identity, NameEncoder
from namespace.cli import main
from namespace.data_pipeline.stage_log import output_to
from namespace.demo import checks
from namespace.demo.figures import retrieval_figure
from namespace.figures import grid_figure, gutter

from .conftest import ROOT, SMALL_WORLD, html_facts

# the smaller miniature world of the tests (built once per run), the session's pre-trained towers, 2 prompts
SMALLER = ["--references_per_identity", "3", "--prompts", '["a photo of a person", "a photo of a person on a beach"]']
SMALLER += ["--interpolation_steps", "3", "--miniature", json.dumps(SMALL_WORLD)]
SMALLER += ["--likeness_args", json.dumps(["--refine.steps", "40", "--lora.steps", "40", "--method_people", "1",
                                           "--chosen_one.rounds", "2", "--chosen_one.candidates", "6"])]  # fmt: skip
FIGURES = [
    "likeness",
    "methods",
    "interpolation-judged",
    "probe",
    "funnel",
    "loss",
    "retrieval",
    "generation",
    "interpolation",
]
ARGS: list[str] = []  # the demo's command line, set by the fixture


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory, small_world, worlds, tiny_towers):
    output = tmp_path_factory.mktemp("demo") / "output"
    towers = json.dumps([{"model": t.model, "pretrained": t.pretrained, "embed_dim": t.embed_dim} for t in tiny_towers])
    ARGS[:] = ["demo", "--output", str(output), *SMALLER]  # no --config: the defaults are a working run
    ARGS.extend(["--miniature_cache", str(worlds), "--towers", towers])
    evaluation = yaml.safe_load((ROOT / "configs/eval/demo.yaml").read_text())  # the refined name and the LoRA
    evaluation |= {"refine": {"steps": 20}, "lora": evaluation["lora"] | {"steps": 20}}  # trained briefly
    (output.parent / "eval.yaml").write_text(yaml.safe_dump(evaluation))
    ARGS.extend(["--eval_config", str(output.parent / "eval.yaml")])
    # what a person sees in the terminal (file descriptors 1 and 2, the libraries' output too), kept beside it
    with output_to(output.parent / "terminal.txt"):
        assert main(ARGS) == 0
    return output


@pytest.mark.slow
def test_the_terminal_shows_the_steps_and_no_library_chatter(demo_output):
    lines = re.split(r"[\r\n]+", (demo_output.parent / "terminal.txt").read_text())
    chatter = ("%|", "Loading pipeline components", "Writing model shards", "INFO:", "Trainable params", "deprecated")
    assert not [line for line in lines if any(word in line for word in chatter)]
    first_step = next(line for line in lines if line.startswith("["))
    assert first_step.startswith("[1/") and "miniature world" in first_step
    assert any(line.startswith("Lightning's messages: ") for line in lines)  # where Lightning's INFO lines went


def shown_commands(html: str) -> list[str]:
    """The command lines of a report's <pre> blocks, in order, as a reader copies them."""
    lines = []
    for pre in re.findall(r"<pre>(.*?)</pre>", html, re.S):
        for block in pre.split("<span class='command'>")[1:]:
            # every character of a command sits in an unbreakable argument span, but the spaces between them
            assert re.sub(r"<span class='arg'>[^<]*</span>", "", block).strip(" ") == "</span>", block
            lines.append(" ".join(unescape(arg) for arg in re.findall(r"<span class='arg'>([^<]*)</span>", block)))
    return lines


@pytest.mark.slow
def test_report_names_the_command_as_typed_and_keeps_arguments_whole(demo_output):
    html = (demo_output / "report.html").read_text()
    typed, replay = shown_commands(html)[:2]
    assert typed == shlex.join(["magicnaming", *ARGS])
    config = demo_output / "work/configs/demo.yaml"  # runs it again with every setting spelled out
    replay_args = ["magicnaming", "demo", "--config", str(config), "--output", str(demo_output), "--overwrite", "true"]
    assert replay == shlex.join(replay_args)  # the same folder again: replacing it is what the replay asks
    # lines wrap between arguments only, never inside a path (`demo-o` / `utput`)
    assert "nowrap" in html and "break-all" not in html


@pytest.mark.slow
def test_report_shows_every_figure_with_the_commands_that_made_it(demo_output):
    html = (demo_output / "report.html").read_text()
    page = html_facts(html)
    assert page.images == [f"figures/{name}.png" for name in FIGURES]
    for name in FIGURES:
        assert Image.open(demo_output / f"figures/{name}.png").size[0] > 200
    sections = html.split("<h2>")[3:12]  # after the results and the evaluation's table: one section per figure
    expected = [["miniature build", "likeness"], ["likeness"], ["likeness"], ["data build", "likeness"], ["data build"],
                ["train fit"], ["train fit", "train export"], ["identity encode", "generate"],
                ["identity encode", "interpolate"]]  # fmt: skip
    for section, commands in zip(sections, expected, strict=True):
        shown = shown_commands(section)
        assert all(any(line.startswith(f"magicnaming {command} ") for line in shown) for command in commands), shown
    assert "miniature world" in page.text.split("Read this first")[1][:200]  # the caveat comes first
    ran = (demo_output / "work/commands.sh").read_text()
    assert [line.split()[1] for line in ran.splitlines()] == [
        "miniature", "data", "train", "train", "identity", "identity", "identity", "generate", "generate", "generate",
        "interpolate", "likeness", "evaluate",
    ]  # fmt: skip


@pytest.mark.slow
def test_metrics_hold_retrieval_and_chance(demo_output):
    metrics = json.loads((demo_output / "metrics.json").read_text())
    for key in ("retrieval_top1_heldout_images", "retrieval_top1_unseen_identities", "chance"):
        assert 0.0 <= metrics[key] <= 1.0, key
    people = metrics["identities"]  # the famous people the probe kept
    assert metrics["chance"] == pytest.approx(1 / people)
    assert metrics["chance_top5"] == pytest.approx(min(5, people) / people)
    assert metrics["epochs"] == 150
    assert metrics["retrieval_top1_heldout_images"] <= metrics["retrieval_top5_heldout_images"]
    (log,) = (demo_output / "work/training").glob("logs/version_*/metrics.csv")
    last = [row for row in csv.DictReader(log.open()) if row["val_heldout/top1"]][-1]  # the trainer's own log
    assert metrics["retrieval_top1_heldout_images"] == float(last["val_heldout/top1"])
    assert metrics["retrieval_top1_unseen_identities"] == float(last["val_unseen/top1"])
    exported = NameEncoder.from_pretrained(demo_output / "encoder", load_towers=False).statistics.delta
    assert metrics["delta"] == exported == pytest.approx(float(last["val_heldout/delta"]))  # the calibrated δ
    html = (demo_output / "report.html").read_text()  # and the report's results table shows it
    assert (
        f"calibrated name guidance δ (eq. 4, the plugin&#x27;s default)</th><td class='number'>{metrics['delta']:.3f}"
        in html
    )
    found = metrics["identity_files"]
    assert len(found) == 3 and all(isinstance(entry["correct"], bool) for entry in found.values())


@pytest.mark.slow
def test_encoder_and_identity_files_load(demo_output):
    encoder = NameEncoder.from_pretrained(demo_output / "encoder")  # with its pre-trained tiny towers
    assert (encoder.config.num_tokens, encoder.config.width) == (8, 80)
    files = sorted((demo_output / "identities").glob("*.safetensors"))
    assert len(files) == 3
    for path in files:
        identity = Identity.load(path, num_tokens=8, width=80)
        assert identity.source == "images"
        # the identity file is the exported encoder's name for the reference photos copied from the shards
        photos = sorted((demo_output / "work/references" / path.stem).glob("*.jpg"))
        expected = Identity.from_images(encoder, photos, label=identity.label).embedding
        torch.testing.assert_close(identity.embedding, expected)
    for person in (demo_output / "work/generated").iterdir():
        assert Image.open(person / "000-00.png").size == (16, 16)  # the miniature world's size


@pytest.mark.parametrize(("names", "expected"), [(8, (1 / 8, 5 / 8)), (3, (1 / 3, 1.0))])
def test_retrieval_figure_draws_top1_and_top5_chance(names, expected):
    rows = [{"epoch": e, "step": 10 * e, "val_heldout/top1": 0.5, "val/chance": 1 / names} for e in range(3)]
    (axis,) = retrieval_figure(rows).axes
    chance = [(line.get_label(), *set(line.get_ydata())) for line in axis.lines if "chance" in line.get_label()]
    top1, top5 = expected
    assert chance == [(f"chance (top-1) = {top1:.3f}", pytest.approx(top1)), (f"chance (top-5) = {top5:.3f}", top5)]


def test_image_grids_have_white_gutters_between_cells():
    colours = [[(200, 0, 0), (0, 200, 0), (0, 0, 200)], [(90, 90, 0), (0, 90, 90), (90, 0, 90)]]
    rows = [[Image.new("RGB", (48, 48), colour) for colour in row] for row in colours]
    (axis,) = grid_figure(rows, ["a", "b"], ["x", "y", "z"], "title").axes
    grid = np.asarray(axis.images[0].get_array())  # the pixels the figure draws, (H, W, 3)
    step = 48 + gutter(48)
    assert grid.shape == (2 * step - gutter(48), 3 * step - gutter(48), 3) and gutter(48) >= 2
    for r, row in enumerate(colours):
        for c, colour in enumerate(row):
            assert (grid[r * step : r * step + 48, c * step : c * step + 48] == colour).all()
    for c in (1, 2):  # the columns and the row between cells are the background
        assert (grid[:, c * step - gutter(48) : c * step] == 255).all()
    assert (grid[step - gutter(48) : step] == 255).all()


def test_tower_pretraining_shows_progress_and_no_random_init_warning(tmp_path, capsys, caplog):
    from namespace.synthetic.tower_pretraining import pretrain_tiny_towers

    towers = pretrain_tiny_towers(tmp_path, steps=2, identities=4, photos=2, batch_size=4)
    lines = capsys.readouterr().err.splitlines()
    # open_clip's "Model initialized randomly" (a logged warning) is untrue of the written towers: they are trained
    assert "initialized randomly" not in caplog.text + "\n".join(lines)
    assert lines[0] == "  rendering 8 synthetic faces (4 people × 2 photos)"
    for tower, (start, end) in zip(towers, zip(lines[1::2], lines[2::2], strict=True), strict=True):
        assert start == f"  {tower.model}: 2 identity-classification steps from random weights"
        assert re.fullmatch(rf"  {tower.model}: loss \d+\.\d{{3}} after 2 steps \(\d+\.\d s\)", end)


def test_bad_input_fails_clearly_and_touches_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    args = ["demo", "--output", str(tmp_path), "--image_size", "30", "--interpolation_steps", "1"]
    assert main([*args, "--prompts", "[]", "--data_configs", '["configs/data/nothing.yaml"]']) == 1
    error = capsys.readouterr().err
    assert f"output: {str(tmp_path)!r} is a non-empty folder that is not a previous demo output" in error
    assert "image_size: expected a multiple of 8, got 30" in error
    assert "interpolation_steps: expected at least 2, got 1" in error
    assert "prompts: expected at least one prompt, got an empty list" in error
    assert "data_configs[0]: expected a YAML file, 'configs/data/nothing.yaml' does not exist" in error
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_previous_demo_output_is_replaced_only_with_overwrite(tmp_path):
    problems = []
    checks.prepare_output(tmp_path / "out")
    (tmp_path / "out/work").mkdir()
    (tmp_path / "out/metrics.json").write_text("{}")
    checks.check_output(tmp_path / "out", False, problems)
    assert problems == [
        f"output: {str(tmp_path / 'out')!r} holds a previous demo output; pass --overwrite true to replace it, or "
        "give a new folder"
    ]
    problems.clear()
    checks.check_output(tmp_path / "out", True, problems)
    assert problems == []  # the demo's own folder may be written again when asked
    checks.prepare_output(tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == [checks.MARKER]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("mine")
    checks.check_output(tmp_path / "mine", True, problems)  # --overwrite never replaces a folder it did not write
    assert problems and "is not a previous demo output" in problems[0]


def test_the_bare_defaults_pass_every_check(tmp_path, capsys):
    """``magicnaming demo`` with no settings is a working run: only the one bad setting given here is refused (the
    checks gather every problem, so a default that failed one would be listed too)."""
    assert main(["demo", "--output", str(tmp_path / "out"), "--threads", "0"]) == 1
    error = capsys.readouterr().err
    assert "error: threads: expected at least 1, got 0\n" in error
    assert error.count("expected") == 1 and not (tmp_path / "out").exists()


def test_the_demo_config_holds_the_defaults():
    """configs/demo.yaml lists every setting at the function's default (it documents them; it changes nothing)."""
    import inspect
    from dataclasses import asdict

    from namespace.demo.run import DEFAULT_PROMPTS, _default_data_configs, demo
    from namespace.miniature.world import MiniatureWorldConfig

    resolved = {"data_configs": _default_data_configs("miniature"), "prompts": DEFAULT_PROMPTS}
    resolved |= {"miniature": asdict(MiniatureWorldConfig()), "eval_config": "configs/eval/demo.yaml"}
    resolved |= {"train_configs": ["configs/train/tiny.yaml"], "train_args": [], "likeness_args": []}
    config = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    parameters = inspect.signature(demo).parameters
    assert set(config) == set(parameters) - {"output", "command_line"}
    for key, value in config.items():
        default = parameters[key].default
        assert value == resolved.get(key, default), key


@pytest.mark.slow
def test_the_method_is_visible_on_the_miniature_world(demo_output):
    """The issue's figures on the tests' smaller world (6 famous people, 500 UNet steps), each at a threshold a
    random model fails: an untrained UNet draws noise, which the judge assigns at chance (1/6) and finds about as
    consistent for every name (so the probe keeps all of them or none), and whose interpolation paths do not move
    from A to B. Measured on this world: name accuracy 0.75, probe 5/6 kept and 4/5 dropped, likeness 0.62 (no
    name 0.07), prompts followed 0.81 (no name 0.78), interpolation 1.0 (3 paths), unseen 0.50 (sampled 0.34)."""
    m = json.loads((demo_output / "metrics.json").read_text())
    assert m["likeness_chance"] == pytest.approx(1 / 6)
    assert m["mini_model_name_accuracy"] >= 0.5
    assert m["probe_known_kept"] >= 0.66 and m["probe_unknown_dropped"] >= 0.6
    assert m["likeness_heldout"] >= 0.4 and m["likeness_plain"] <= 2 * m["likeness_chance"]
    assert m["prompt_followed_magicnaming"] >= 0.7 * m["prompt_followed_plain"]
    assert m["interpolation_monotonic"] >= 0.5
    assert m["likeness_unseen"] > m["likeness_unseen_baseline"]
    # every headline figure with its spread over seeds: the mean is the figure, the per-seed values are its parts
    for key in ("likeness_heldout", "likeness_plain", "prompt_followed_magicnaming", "mini_model_name_accuracy"):
        spread = m["spread"][key]
        assert spread["seeds"] == 4 and len(spread["per_seed"]) == 4, key
        assert spread["mean"] == pytest.approx(m[key]) == pytest.approx(np.mean(spread["per_seed"])), key
        assert spread["std"] == pytest.approx(np.std(spread["per_seed"], ddof=1)), key
    assert m["spread"]["interpolation_monotonic"]["seeds"] == 6 and m["spread"]["interpolation_monotonic"]["std"] >= 0
    assert m["interpolation_rank_correlation"] > 0.5  # the judge's similarity moves from A to B along the paths
    # past the encoder: each method's figures with their spreads, the judge's threshold and the seconds per identity
    for method in ("encoder", "refined", "lora"):
        for figure in ("likeness_unseen", "likeness_heldout", "prompt_followed"):
            assert m["spread"][f"{figure}_{method}"]["seeds"] == 4, (figure, method)
    assert m["likeness_unseen_encoder"] == pytest.approx(m["likeness_unseen"])  # the same people, prompts and seeds
    # refining the name (40 steps here) draws the unseen people more alike: measured 0.556 against the encoder's 0.490
    assert m["likeness_unseen_refined"] > m["likeness_unseen_encoder"] + 0.03
    assert 0 < m["judge_same_person_threshold"] < 1
    assert set(m["seconds"]["per_identity"]) == {"encoder", "refined", "lora"}
    assert m["spread"]["chosen_one_consistency_final"]["seeds"] == 4


@pytest.mark.slow
def test_the_demo_evaluation_scores_plain_against_magicnaming(demo_output):
    """``magicnaming evaluate`` as a demo step (configs/eval/demo.yaml): every metric per method, MagicNaming's
    likeness to the reference photos above plain's ("a person": the world knows none of these people by name) and its
    prompt following (the detectors' CLIP-TI analogue) not far below; the table in the report."""
    results = json.loads((demo_output / "evaluation/results.json").read_text())
    methods = results["methods"]
    assert set(methods) == {"plain", "magicnaming", "refined", "lora"}
    assert results["tasks"] == ["scene", "emotion", "style"]
    assert set(results["seconds_per_identity"]["lora"]) == set(results["people"])  # each person's LoRA timed
    for method in methods.values():
        assert set(method) == {"clip_ti", "fid", "kid", "reference_similarity", "identity_consistency",
                               "face_detection_rate"}  # fmt: skip
        assert set(method["clip_ti"]) == {"scene", "emotion", "style", "all"}
    ours, plain = methods["magicnaming"], methods["plain"]
    assert ours["reference_similarity"]["all"] > plain["reference_similarity"]["all"] + 0.05  # measured 0.343, 0.214
    assert ours["clip_ti"]["all"] >= plain["clip_ti"]["all"] - 20
    assert ours["fid"]["all"] > 0 and plain["fid"]["all"] is None  # plain is the reference set of FID/KID
    # the world's detector (its person head) finds the person in (nearly) every image of either method
    assert ours["face_detection_rate"]["all"] >= 0.8 and plain["face_detection_rate"]["all"] >= 0.8
    assert [point["default"] for point in results["sweep"]].count(True) == 1 and len(results["sweep"]) == 4
    report = (demo_output / "report.html").read_text()
    assert "The paper's evaluation, on the miniature world" in report and "<th>magicnaming</th>" in report
    assert (demo_output / "evaluation/report.html").is_file() and (demo_output / "evaluation/tradeoff.png").is_file()
    assert "magicnaming evaluate --config" in (demo_output / "work/commands.sh").read_text()


def test_the_shipped_stage_configs_equal_the_repositorys(tmp_path, monkeypatch):
    """The demo's defaults name configs/ files; the package ships copies (a wheel has no configs/), byte for byte the
    repository's, found from any folder."""
    shipped = ROOT / "namespace/demo" / checks.SHIPPED_CONFIGS
    copies = sorted(path.relative_to(shipped) for path in shipped.rglob("*.yaml"))
    expected = ["data/demo.yaml", "data/miniature.yaml", "eval/demo.yaml", "train/tiny.yaml"]
    assert [str(path) for path in copies] == expected
    for path in copies:
        assert (shipped / path).read_bytes() == (ROOT / "configs" / path).read_bytes(), path
    monkeypatch.chdir(tmp_path)  # no configs/ here
    problems = []
    for path in copies:
        assert checks.config_path(Path("configs") / path, "x", problems) == shipped / path
    assert checks.config_path(Path("configs/data/demo-sdxl.yaml"), "x", problems) and len(problems) == 1
