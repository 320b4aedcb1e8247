"""How ``magicnaming likeness`` draws: the settings it takes, the seeds and size of each call (the demo's figures
rest on them), and its refusals before anything loads."""

import pytest
import torch

from namespace.inference.generation_settings import GenerationSettings
from namespace.inference.likeness import likeness
from namespace.inference.likeness_metrics import Drawing


class RecordingNaming:
    """Stands in for the plugin: records each call's keywords and returns no images."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, prompts, identity=None, **keywords):
        self.calls.append((prompts, identity, keywords))
        return type("Result", (), {"images": []})()


def _drawing(settings: GenerationSettings) -> tuple[Drawing, RecordingNaming]:
    naming = RecordingNaming()
    return Drawing(naming, None, None, settings, seeds=2, prompts=["a", "b"], wanted=[None, None]), naming


def test_each_prompt_of_a_call_starts_from_the_noise_of_its_seed():
    drawing, naming = _drawing(GenerationSettings(num_inference_steps=20, guidance_scale=2.0, height=32, width=32))
    drawing.draw(["a photo of a person", "a watercolor painting of a person"], seed=3)
    ((_, identity, keywords),) = naming.calls
    assert identity is None and (keywords["num_inference_steps"], keywords["guidance_scale"]) == (20, 2.0)
    assert (keywords["height"], keywords["width"]) == (32, 32)
    assert (keywords["delta"], keywords["eta"], keywords["step_window"]) == (None, None, None)  # the plugin's own
    noise = torch.randn(4, generator=torch.Generator().manual_seed(3))  # as likeness seeded before the settings
    assert len(keywords["generator"]) == 2
    assert all(torch.equal(torch.randn(4, generator=g), noise) for g in keywords["generator"])


def test_the_seed_and_the_name_settings_reach_every_call():
    settings = GenerationSettings(height=32, width=32, delta=1.5, eta=9.0, step_window=(0.0, 0.5), seed=10)
    drawing, naming = _drawing(settings)
    drawing.draw(["a photo of a person"], identity=["someone"], seed=2)
    ((_, _, keywords),) = naming.calls
    assert (keywords["delta"], keywords["eta"], keywords["step_window"]) == (1.5, 9.0, (0.0, 0.5))
    noise = torch.randn(4, generator=torch.Generator().manual_seed(12))
    assert torch.equal(torch.randn(4, generator=keywords["generator"][0]), noise)


def test_bad_settings_are_refused_with_the_other_problems_before_anything_loads(tmp_path):
    world, laioncele = tmp_path / "world", tmp_path / "laioncele"
    laioncele.mkdir()
    (laioncele / "manifest.json").write_text("{}")
    settings = GenerationSettings(num_inference_steps=0, step_window=(0.5, 0.2), seed=-1)
    with pytest.raises(ValueError) as error:
        likeness(world, tmp_path / "encoder", laioncele, tmp_path / "out", seeds=0, settings=settings)
    message = str(error.value)
    expected = ["--seeds: expected at least 1, got 0", "--num_inference_steps: expected at least 1, got 0",
                "--step_window: expected 0 <= start < end <= 1", "--seed: expected an integer from 0 to 2**64-1",
                "world: expected a miniature world folder (with world.json)"]  # fmt: skip
    assert [part for part in expected if part not in message] == []
    assert not (tmp_path / "out").exists()


def test_bad_method_settings_are_refused_before_anything_loads(tmp_path):
    """An unknown method, a refine of 0 steps or a negative prior weight, a LoRA of rank 0, 0 Chosen One rounds: each
    named, as typed."""
    from namespace.inference.likeness_chosen_one import ChosenOneSettings
    from namespace.inference.lora_baseline import LoraSettings
    from namespace.inference.refine import RefineSettings

    with pytest.raises(ValueError) as error:
        likeness(tmp_path / "world", tmp_path / "encoder", tmp_path / "laioncele", tmp_path / "out",
                 methods=("refined", "lora", "chosen_one", "dreambooth"),
                 refine=RefineSettings(steps=0, prior_weight=-1.0), lora=LoraSettings(rank=0),
                 chosen_one=ChosenOneSettings(rounds=0))  # fmt: skip
    message = str(error.value)
    expected = ["--methods: expected some of refined, lora, chosen_one, got 'dreambooth'",
                "--refine.steps: expected an integer ≥ 1, got 0", "--refine.prior_weight: expected a finite number ≥ 0",
                "--lora.rank: expected at least 1, got 0",
                "--chosen_one.rounds: expected an integer of at least 1"]  # fmt: skip
    assert [part for part in expected if part not in message] == []
    assert not (tmp_path / "out").exists()
