"""One GenerationSettings for every drawing command: its checks name the flags, its call arguments seed each image,
and run_command lays it out as the same top-level flags the commands always had."""

from dataclasses import replace
from pathlib import Path

import pytest

from namespace.command_line import flat_parameters, run_command
from namespace.inference.generation_settings import GenerationSettings


def draw(prompt: str, output: Path = Path("out"), settings: GenerationSettings = GenerationSettings(seed=3)):
    """Draws a prompt.

    Args:
        prompt: what to draw.
        output: where.
        settings: how.
    """
    return prompt, output, settings


def test_every_bad_field_is_reported_with_its_flag():
    bad = GenerationSettings(
        num_inference_steps=0, guidance_scale=float("nan"), height=12, delta=float("inf"), eta=-1.0,
        step_window=(0.5, 0.2), seed=2**64 - 2,
    )  # fmt: skip
    problems = bad.problems(seeds=3)
    flags = [problem.split(":")[0] for problem in problems]
    assert flags == ["--seed", "--num_inference_steps", "--guidance_scale", "--height", "--delta", "--eta",
                     "--step_window"]  # fmt: skip
    assert "at most 18446744073709551613" in problems[0] and "got 18446744073709551614" in problems[0]
    assert GenerationSettings().problems() == []
    assert replace(bad, seed=1).problems(seeds=3)[0].startswith("--num_inference_steps")


def test_call_arguments_seed_each_image_and_carry_the_rest():
    settings = GenerationSettings(num_inference_steps=7, delta=1.5, step_window=(0.2, 1.0), seed=10)
    first, second = settings.call_arguments(0), settings.call_arguments(2)
    assert first["generator"].initial_seed() == 10 and second["generator"].initial_seed() == 12
    assert {key: first[key] for key in ("num_inference_steps", "delta", "step_window", "eta", "height")} == {
        "num_inference_steps": 7, "delta": 1.5, "step_window": (0.2, 1.0), "eta": None, "height": None
    }  # fmt: skip
    assert "seed" not in first


def test_the_settings_are_flat_flags_with_the_commands_defaults(capsys):
    assert flat_parameters(draw) == {"settings": GenerationSettings}
    prompt, output, settings = run_command(draw, ["--prompt", "a cat", "--delta", "2", "--step_window", "[0.1, 0.9]"],
                                           "draw")  # fmt: skip
    assert (prompt, output) == ("a cat", Path("out"))
    assert settings == GenerationSettings(delta=2.0, step_window=(0.1, 0.9), seed=3)  # the function's default seed
    with pytest.raises(SystemExit):
        run_command(draw, ["--help"], "draw")
    help_text = capsys.readouterr().out
    for flag in ("--num_inference_steps", "--guidance_scale", "--delta", "--eta", "--step_window", "--seed"):
        assert flag in help_text
    assert "--settings" not in help_text
