"""The paper's fine-tuning baseline, DreamBooth-LoRA, on the tiny SDXL: training lowers the denoising loss, the
pipeline is left exactly as it was, the LoRA changes what is drawn only while applied, a seed gives one LoRA, bad
settings are named, and ``magicnaming evaluate`` draws magicnaming, refined and lora side by side."""

import json

import pytest
import torch

from namespace.cli import main
from namespace.inference.evaluation.methods import LoraMethod, Person, RefinedMethod
from namespace.inference.lora_baseline import (
    LORA_SUBJECT,
    LoraSettings,
    lora_applied,
    lora_prompt,
    train_identity_lora,
)
from namespace.inference.refine import DenoisingObjective
from namespace.testing import synthetic_face

from .conftest import evaluation_folder
from .test_refine import assert_same_state, model_state

FAST = {"gradient_checkpointing": False, "progress_every": 0}
SIZE = 32  # the tiny pipeline's images
DRAW = {"num_inference_steps": 2, "guidance_scale": 1.0, "height": SIZE, "width": SIZE}


@pytest.fixture(scope="module")
def photos():
    return [synthetic_face(3, variant, 64) for variant in range(3)]


@pytest.fixture(scope="module")
def trained(tiny_pipe, photos):
    """A LoRA trained for 8 steps (the tests below only read it)."""
    return train_identity_lora(tiny_pipe, photos, LoraSettings(steps=8, learning_rate=3e-3), **FAST)


def structure(unet) -> list[tuple[str, str]]:
    """Every module's name and class: a LoRA left on the UNet wraps its linear layers."""
    return [(name, type(module).__name__) for name, module in unet.named_modules()]


def drawn(pipe, seed: int = 0) -> torch.Tensor:
    """The tiny pipeline's latents for one prompt and seed."""
    generator = torch.Generator().manual_seed(seed)
    return pipe(f"a photo of {LORA_SUBJECT}", generator=generator, output_type="latent", **DRAW).images


class TestTraining:
    def test_training_lowers_the_denoising_loss_on_fixed_draws(self, tiny_pipe, photos, trained):
        objective = DenoisingObjective(tiny_pipe, photos, ["a photo of sks person"])
        generator = torch.Generator().manual_seed(123)  # draws the training never saw
        draws = [objective.draw(generator, 1) for _ in range(4)]
        before = objective.mean_loss(None, draws)
        with lora_applied(tiny_pipe, trained):
            after = objective.mean_loss(None, draws)
        assert after < before - 0.01, (before, after)
        assert objective.mean_loss(None, draws) == before  # removed: the loss of the pipeline as it was

    def test_the_weights_are_a_small_lora_on_the_attention_projections_on_the_cpu(self, tiny_pipe, trained):
        attention = [name for name, _ in tiny_pipe.unet.named_modules()
                     if name.rsplit(".", 1)[-1] in ("to_q", "to_k", "to_v") or name.endswith("to_out.0")]  # fmt: skip
        assert {key.rsplit(".lora_", 1)[0] for key in trained} == set(attention)
        assert len(trained) == 2 * len(attention)
        for key, value in trained.items():
            assert value.device.type == "cpu" and value.dtype == torch.float32
            assert (value.shape[0] if ".lora_A." in key else value.shape[1]) == 4  # the default rank
        assert any(value.abs().sum() > 0 for key, value in trained.items() if ".lora_B." in key)  # B starts at 0

    def test_the_pipeline_is_left_exactly_as_it_was(self, tiny_pipe, photos):
        before, modules = model_state(tiny_pipe), structure(tiny_pipe.unet)
        weights = train_identity_lora(tiny_pipe, photos, LoraSettings(steps=2, learning_rate=1e-2),
                                      gradient_checkpointing=True, progress_every=0)  # fmt: skip
        assert_same_state(before, model_state(tiny_pipe))  # weights, requires_grad, modes, checkpointing
        assert structure(tiny_pipe.unet) == modules and not getattr(tiny_pipe.unet, "peft_config", None)
        assert all(p.grad is None for p in tiny_pipe.unet.parameters())
        with lora_applied(tiny_pipe, weights):
            assert structure(tiny_pipe.unet) != modules  # on while applied
        assert_same_state(before, model_state(tiny_pipe))
        assert structure(tiny_pipe.unet) == modules
        with pytest.raises(RuntimeError, match="inside"), lora_applied(tiny_pipe, weights):
            raise RuntimeError("inside")
        assert_same_state(before, model_state(tiny_pipe))
        assert structure(tiny_pipe.unet) == modules

    def test_a_seed_gives_one_lora(self, tiny_pipe, photos):
        settings = LoraSettings(steps=1, learning_rate=1e-2, seed=5)
        photo = photos[:1]
        first = train_identity_lora(tiny_pipe, photo, settings, **FAST)
        again = train_identity_lora(tiny_pipe, photo, settings, **FAST)
        other = train_identity_lora(tiny_pipe, photo, LoraSettings(steps=1, learning_rate=1e-2, seed=6), **FAST)
        assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
        assert any(not torch.equal(first[k], other[k]) for k in first)

    def test_the_progress_lines_report_the_loss(self, tiny_pipe, photos, capfd):
        train_identity_lora(tiny_pipe, photos[:1], LoraSettings(steps=3), **(FAST | {"progress_every": 2}))
        lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("LoRA step")]
        assert [line.split(":")[0] for line in lines] == ["LoRA step 2/3", "LoRA step 3/3"]  # and the last
        assert all("denoising loss" in line for line in lines)


class TestApplied:
    def test_the_lora_changes_what_is_drawn_only_while_applied(self, tiny_pipe, trained):
        plain = drawn(tiny_pipe)
        with lora_applied(tiny_pipe, trained):
            with_lora = drawn(tiny_pipe)
        with lora_applied(tiny_pipe, trained, scale=0.0):
            at_zero = drawn(tiny_pipe)
        assert (with_lora - plain).abs().max() > 1e-3
        torch.testing.assert_close(at_zero, plain)  # scale 0: no effect
        assert torch.equal(drawn(tiny_pipe), plain)  # removed: the pipeline draws as before

    def test_weights_that_are_no_lora_are_refused(self, tiny_pipe, trained):
        with pytest.raises(ValueError, match="weights: expected a LoRA"), lora_applied(tiny_pipe, {}):
            pass
        renamed = {key.replace("to_q", "to_x"): value for key, value in trained.items()}
        with pytest.raises(ValueError, match="weights: do not fit this UNet"), lora_applied(tiny_pipe, renamed):
            pass
        assert not getattr(tiny_pipe.unet, "peft_config", None)

    def test_a_unet_holding_another_adapter_is_refused(self, tiny_pipe, photos, trained):
        from peft import LoraConfig

        flags = [(parameter, parameter.requires_grad) for parameter in tiny_pipe.unet.parameters()]
        tiny_pipe.unet.add_adapter(LoraConfig(r=2, target_modules=["to_q"]), adapter_name="theirs")
        try:
            with pytest.raises(ValueError, match=r"already holds the adapters \['theirs'\]"):
                train_identity_lora(tiny_pipe, photos, LoraSettings(steps=1), **FAST)
            with pytest.raises(ValueError, match="already holds"), lora_applied(tiny_pipe, trained):
                pass
            assert list(tiny_pipe.unet.peft_config) == ["theirs"]
        finally:
            tiny_pipe.unet.unload_lora()
            for parameter, flag in flags:  # peft froze the base weights when it added theirs
                parameter.requires_grad_(flag)


class TestBadInput:
    def test_every_bad_setting_is_named(self):
        settings = LoraSettings(steps=0, rank=0, learning_rate=-1.0, batch_size=0, seed=-1, prompt="a photo")
        problems = settings.problems()
        assert "--lora.steps: expected at least 1, got 0" in problems
        assert "--lora.rank: expected at least 1, got 0" in problems
        assert "--lora.batch_size: expected at least 1, got 0" in problems
        assert any(p.startswith("--lora.learning_rate: expected a finite number > 0, got -1.0") for p in problems)
        assert any(p.startswith("--lora.seed:") and "-1" in p for p in problems)
        assert any(p.startswith("--lora.prompt:") and LORA_SUBJECT in p for p in problems)
        assert len(problems) == 6 and LoraSettings().problems() == []

    def test_training_refuses_bad_settings_and_no_photo_before_anything_runs(self, photos):
        with pytest.raises(ValueError, match=r"settings\.steps: expected at least 1, got 0.*photos: expected at least"):
            train_identity_lora(None, [], LoraSettings(steps=0))  # no pipeline touched: it is None


def test_lora_prompt_puts_the_subject_in_place_of_a_person():
    assert lora_prompt("a photo of a person at the beach") == "a photo of sks person at the beach"
    assert lora_prompt("a person, a persona") == "sks person, a persona"
    assert lora_prompt("a photo of a dog") == "a photo of a dog"


class TestMethods:
    @pytest.mark.slow
    def test_each_person_is_trained_once_and_timed(self, tiny_pipe, tiny_encoder, photos, monkeypatch):
        from namespace.inference import MagicNaming
        from namespace.inference.evaluation import methods

        naming = MagicNaming(tiny_pipe, tiny_encoder)
        person = Person("carol", None, photos, naming.identity(photos, check_faces=False), "sha", 0.5)
        calls = []
        train = methods.train_identity_lora
        monkeypatch.setattr(methods, "train_identity_lora", lambda *a, **k: calls.append(a[1:]) or train(*a, **k))
        lora = LoraMethod(tiny_pipe, LoraSettings(steps=2))
        refined = RefinedMethod(naming, methods.RefineSettings(steps=2))
        for method in (lora, refined):
            setting = method.settings()[0]
            first = method.draw(["a photo of sks person"], person, setting, [0], DRAW)
            again = method.draw(["a photo of sks person"], person, setting, [0], DRAW)
            assert len(first) == len(again) == 1
            assert list(method.seconds_per_identity) == ["carol"] and method.seconds_per_identity["carol"] > 0
        assert len(calls) == 1 and calls[0][2:] == (SIZE, SIZE)  # trained once, at the drawing's size
        assert refined.seconds_per_identity["carol"] > 0.5  # the encoder's 0.5 s and the refinement's
        assert refined.refined["carol"].metadata["steps"] == "2"
        assert lora.subject(person) == LORA_SUBJECT and refined.subject(person) == "a person"
        assert lora.describe(person)["lora"]["steps"] == 2 and refined.describe(person)["refine"]["steps"] == 2
        assert not getattr(tiny_pipe.unet, "peft_config", None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, real_faces, tiny_models):
    tasks = {"scene": ["a photo of {person} on a beach"]}
    return evaluation_folder(
        tmp_path_factory.mktemp("evaluate-lora"), real_faces, tiny_models, tasks, seeds=[0],
        methods=["magicnaming", "refined", "lora"], refine={"steps": 2}, lora={"steps": 2},
    )  # fmt: skip


@pytest.mark.slow
def test_evaluate_draws_magicnaming_refined_and_lora_and_redraws_when_the_lora_changes(setup):
    output = setup / "out"
    args = ["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(output)]
    assert main(args) == 0
    results = json.loads((output / "results.json").read_text())
    assert set(results["methods"]) == {"magicnaming", "refined", "lora"} and results["images"] == 3 * 2
    assert results["settings"]["lora"]["steps"] == 2 and results["settings"]["refine"]["steps"] == 2
    sidecars = {p.parts[-5]: json.loads(p.read_text())["settings"] for p in (output / "images").glob("**/*.json")}
    assert sidecars["lora"]["text"] == "a photo of sks person on a beach" and sidecars["lora"]["lora"]["rank"] == 4
    assert sidecars["refined"]["text"] == "a photo of a person on a beach"
    assert sidecars["refined"]["refine"] == {"steps": 2, "learning_rate": 1e-2, "prior_weight": 1.0, "seed": 0}
    assert main([*args, "--overwrite", "true", "--lora.steps", "3"]) == 0
    reused = json.loads((output / "results.json").read_text())["reused_images"]
    assert sorted(path.split("/")[1] for path in reused) == ["magicnaming"] * 2 + ["refined"] * 2  # lora redrawn


def test_evaluate_names_bad_training_settings_before_anything_loads(setup, tmp_path, capsys):
    args = ["evaluate", "--config", str(setup / "eval.yaml"), "--output", str(tmp_path / "out")]
    bad = ["--lora.steps", "0", "--lora.rank", "0", "--refine.steps", "0", "--refine.prior_weight", "-1"]
    assert main([*args, *bad]) == 1
    error = capsys.readouterr().err
    for fact in ("--lora.steps: expected at least 1, got 0", "--lora.rank: expected at least 1, got 0",
                 "--refine.steps: expected an integer ≥ 1, got 0", "--refine.prior_weight"):  # fmt: skip
        assert fact in error
    assert not (tmp_path / "out" / "images").exists()
