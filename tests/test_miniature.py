"""The miniature world: a tiny SDXL trained to draw the cast's famous people by name, cached by its settings."""

import json

import pytest
import torch

from namespace.miniature import AttributeDetector, IdentityJudge
from namespace.miniature.captions import caption, task_prompts
from namespace.miniature.world import MiniatureWorldConfig, build_miniature_world, miniature_world
from namespace.synthetic.faces import synthetic_face
from namespace.synthetic.people import cast_names

from .conftest import SMALL_WORLD


def _draw(pipe, prompts: list[str], seed: int):
    generator = [torch.Generator().manual_seed(seed) for _ in prompts]
    return pipe(prompts, num_inference_steps=20, guidance_scale=2.0, height=16, width=16, generator=generator).images


def _name_accuracy(pipe, judge: IdentityJudge, famous: list[str], seeds: int = 2) -> float:
    names = cast_names(0)
    gallery = {name: [synthetic_face(names.index(name), v, 96) for v in range(8)] for name in famous}
    enrolled = judge.enroll(gallery)
    right = []
    for seed in range(seeds):
        assigned = judge.assign(_draw(pipe, [caption(name) for name in famous], seed), enrolled)
        right += [a == name for a, name in zip(assigned, famous, strict=True)]
    return sum(right) / len(right)


@pytest.mark.slow
def test_the_world_is_an_sdxl_pipeline_that_draws_its_famous_people_by_name(small_world):
    from diffusers import StableDiffusionXLPipeline

    world = json.loads((small_world / "world.json").read_text())
    assert world["famous"] == cast_names(0)[:6] and world["config"]["famous"] == 6
    pipe = StableDiffusionXLPipeline.from_pretrained(small_world / "pipeline")  # a plain diffusers folder
    pipe.set_progress_bar_config(disable=True)
    assert pipe.scheduler.config.prediction_type == "sample" and pipe.vae.config.scaling_factor == 1.0
    judge = IdentityJudge.load(small_world / "judge")
    accuracy = _name_accuracy(pipe, judge, world["famous"])
    # the same pipeline with random UNet weights draws no one: it must score near chance (1/6)
    untrained = StableDiffusionXLPipeline.from_pretrained(small_world / "pipeline")
    untrained.set_progress_bar_config(disable=True)
    with torch.no_grad():
        for seed, parameter in enumerate(untrained.unet.parameters()):
            parameter.copy_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(seed)) * 0.05)
    assert accuracy >= 0.5, accuracy
    assert _name_accuracy(untrained, judge, world["famous"]) <= 0.34


@pytest.mark.slow
def test_the_world_follows_each_task_prompt(small_world):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(small_world / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    detector = AttributeDetector.load(small_world / "detectors")
    prompts = task_prompts()
    found = detector.detect(_draw(pipe, [prompt for prompt, _ in prompts.values()] * 4, seed=0))
    asked = [attribute for _, attribute in prompts.values()] * 4
    followed = [all(found[key][i] == value for key, value in a.items()) for i, a in enumerate(asked)]
    assert sum(followed) / len(followed) >= 0.5, followed


@pytest.mark.slow
def test_a_world_is_reused_from_the_cache_and_its_key_follows_every_setting(small_world, worlds, capsys):
    config = MiniatureWorldConfig(**SMALL_WORLD)
    assert miniature_world(config, worlds) == small_world == worlds / config.key()
    assert f"reusing {small_world}" in capsys.readouterr().err
    keys = {MiniatureWorldConfig(**SMALL_WORLD | {key: value}).key() for key, value in
            [("famous", 7), ("seed", 1), ("image_size", 24), ("train_text_encoders", False)]}  # fmt: skip
    assert len(keys | {config.key()}) == 5
    assert not list(worlds.glob(".*partial*"))  # nothing half-built is left behind


def test_bad_settings_are_refused_before_anything_is_trained(tmp_path):
    config = MiniatureWorldConfig(famous=40, image_size=20, denoiser_steps=0, attribute_rate=1.5)
    with pytest.raises(ValueError) as error:
        build_miniature_world(tmp_path / "world", config)
    message = str(error.value)
    assert "famous: expected 2…20 (the cast's size), got 40" in message
    assert "image_size: expected a multiple of 8 (at least 8), got 20" in message
    assert "denoiser_steps: expected at least 1, got 0" in message
    assert "attribute_rate: expected a fraction in [0, 1], got 1.5" in message
    assert not (tmp_path / "world").exists()


def test_attributes_change_the_photo_but_not_the_person():
    plain = synthetic_face(3, 5, 32)
    assert synthetic_face(3, 5, 32).tobytes() == plain.tobytes()
    for attribute in ({"scene": "beach"}, {"emotion": "sad"}, {"style": "watercolor"}):
        assert synthetic_face(3, 5, 32, **attribute).tobytes() != plain.tobytes(), attribute
    with pytest.raises(ValueError, match="scene: expected None or one of beach, forest, night, got 'moon'"):
        synthetic_face(3, 5, 32, scene="moon")


def test_captions_name_the_person_first_or_after_the_style():
    assert caption("Alma Quintrell", "beach", "smiling") == "a photo of Alma Quintrell smiling on a beach"
    assert caption("a person", style="watercolor") == "a watercolor painting of a person"
    assert caption("Alma Quintrell", "night", None, "watercolor", name_first=True) == (
        "Alma Quintrell in the city at night, a watercolor painting"
    )


@pytest.mark.slow
def test_the_judge_is_an_identity_embedder_whose_threshold_the_probe_takes(small_world):
    from namespace.data_pipeline.embedders import resolve_embedder
    from namespace.data_pipeline.probe import ProbeConfig, consistency_threshold

    embed = resolve_embedder(f"judge:{small_world / 'judge'}")
    photos = [synthetic_face(person, variant, 96) for person in (0, 1) for variant in (0, 1)]
    vectors = embed(photos)  # (4, dim) unit rows: the same person's photos closer than two people's
    assert vectors.shape[0] == 4 and abs(float((vectors**2).sum(1).mean()) - 1) < 1e-5
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    judge = IdentityJudge.load(small_world / "judge")
    config = ProbeConfig(min_consistency=None)
    assert consistency_threshold(config, f"judge:{small_world / 'judge'}") == (
        judge.same_person_threshold,
        f"judge:{small_world / 'judge'} same_person_threshold",
    )
    assert consistency_threshold(ProbeConfig(min_consistency=0.3), "face_colors") == (0.3, "probe.min_consistency")
    with pytest.raises(ValueError, match=r"probe\.min_consistency: null asks for the embedder's calibrated threshold"):
        consistency_threshold(config, "face_colors")
