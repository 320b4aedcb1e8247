"""Each equation of the name space checked against its formula on random tensors."""

import math
import warnings

import numpy as np
import pytest
import torch

import namespace as ns


def randn(*shape, generator):
    return torch.randn(*shape, generator=generator)


class TestPrepend:
    def test_keeps_start_token_and_first_prompt_tokens_in_place(self, generator):
        prompt = randn(2, 77, 64, generator=generator)
        name = randn(8, 64, generator=generator)
        out = ns.prepend(prompt, name)
        assert out.shape == (2, 77, 64)
        torch.testing.assert_close(out[:, 0], prompt[:, 0], rtol=0, atol=0)  # start token
        torch.testing.assert_close(out[:, 1:9], name.expand(2, 8, 64), rtol=0, atol=0)  # the name
        torch.testing.assert_close(out[:, 9:], prompt[:, 1:69], rtol=0, atol=0)  # first 68 prompt tokens

    def test_one_name_per_prompt(self, generator):
        prompt = randn(3, 77, 16, generator=generator)
        names = randn(3, 8, 16, generator=generator)
        out = ns.prepend(prompt, names)
        for index in range(3):
            torch.testing.assert_close(out[index, 1:9], names[index], rtol=0, atol=0)

    def test_matches_eq1_with_other_token_counts(self, generator):
        prompt = randn(1, 20, 4, generator=generator)
        name = randn(1, 3, 4, generator=generator)
        expected = torch.cat([prompt[:, :1], name, prompt[:, 1:17]], dim=1)
        torch.testing.assert_close(ns.prepend(prompt, name), expected, rtol=0, atol=0)

    def test_casts_name_to_prompt_dtype(self, generator):
        prompt = randn(1, 77, 8, generator=generator).half()
        out = ns.prepend(prompt, randn(8, 8, generator=generator))
        assert out.dtype == torch.float16

    def test_warns_when_prompt_tokens_are_cut(self, generator):
        prompt, name = randn(2, 77, 8, generator=generator), randn(8, 8, generator=generator)
        with pytest.warns(UserWarning, match=r"prompt 1 loses its last 3"):
            ns.prepend(prompt, name, prompt_lengths=[10, 72])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ns.prepend(prompt, name, prompt_lengths=[10, 69])  # 69 = start + 67 tokens + end: fits exactly

    @pytest.mark.parametrize(
        ("prompt_shape", "name_shape", "message"),
        [
            ((1, 77, 2048), (8, 1280), "name has width 1280, but prompt_embeds has width 2048"),
            ((1, 77, 1280), (8, 2048), "is this an SDXL refiner"),
            ((2, 77, 16), (3, 8, 16), "name has batch size 3, but prompt_embeds has 2"),
            ((77, 16), (8, 16), r"prompt_embeds: expected a tensor of shape \(B, L, D\)"),
            ((1, 8, 16), (8, 16), "room for 7 after the start"),
            ((1, 77, 16), (16,), r"name: expected shape \(N, D\) or \(B, N, D\)"),
        ],
    )
    def test_bad_shapes_name_the_argument(self, prompt_shape, name_shape, message):
        with pytest.raises(ValueError, match=message):
            ns.prepend(torch.zeros(prompt_shape), torch.zeros(name_shape))

    def test_integer_name_is_refused(self):
        with pytest.raises(TypeError, match="floating-point"):
            ns.prepend(torch.zeros(1, 77, 4), torch.zeros(8, 4, dtype=torch.long))


class TestGuideAndNormalize:
    def test_guide_is_eq4(self, generator):
        name, mean = randn(3, 8, 32, generator=generator), randn(8, 32, generator=generator)
        torch.testing.assert_close(ns.guide(name, mean, 2.5), mean + 2.5 * (name - mean))
        torch.testing.assert_close(ns.guide(name, mean, 1.0), name)
        torch.testing.assert_close(ns.guide(name, mean, 0.0), mean.expand_as(name))

    def test_guide_refuses_other_layout(self, generator):
        with pytest.raises(ValueError, match=r"mean has shape \(N, D\) = \(4, 32\), but name has \(8, 32\)"):
            ns.guide(randn(8, 32, generator=generator), randn(4, 32, generator=generator), 2.0)
        with pytest.raises(TypeError, match=r"mean has dtype torch\.float64"):
            ns.guide(torch.zeros(8, 4), torch.zeros(8, 4, dtype=torch.float64), 2.0)

    def test_normalize_is_eq5_over_each_whole_identity(self, generator):
        name = randn(4, 8, 32, generator=generator) * torch.tensor([1.0, 2.0, 5.0, 0.1])[:, None, None]
        out = ns.normalize(name, 7.0)
        frobenius = name.flatten(1).norm(dim=1)[:, None, None]
        torch.testing.assert_close(out, 7.0 * name / frobenius)
        torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.full((4,), 7.0))
        # per-token norms are not equalised: the norm is over the whole (N, D) tensor
        assert not torch.allclose(out.norm(dim=-1), out.norm(dim=-1)[:, :1].expand(4, 8))

    def test_normalize_per_identity_eta(self, generator):
        out = ns.normalize(randn(2, 8, 4, generator=generator), torch.tensor([1.0, 3.0]))
        torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.tensor([1.0, 3.0]))

    def test_normalize_errors(self):
        with pytest.raises(ValueError, match="all-zero"):
            ns.normalize(torch.zeros(8, 4), 1.0)
        with pytest.raises(ValueError, match=r"eta: expected a finite name norm η > 0, got -1\.0"):
            ns.normalize(torch.ones(8, 4), -1.0)

    @pytest.mark.parametrize("eta", [float("nan"), float("inf"), 0.0, torch.tensor([1.0, float("nan")])])
    def test_normalize_refuses_a_nan_infinite_or_zero_eta(self, eta):
        """NaN or inf used to give a NaN name, which draws an all-black image."""
        with pytest.raises(ValueError, match="eta: expected a finite name norm η > 0"):
            ns.normalize(torch.ones(2, 8, 4), eta)

    @pytest.mark.parametrize("delta", [float("nan"), float("inf"), -float("inf")])
    def test_guide_refuses_a_nan_or_infinite_delta(self, delta):
        with pytest.raises(ValueError, match="delta: expected a finite name guidance δ, got"):
            ns.guide(torch.ones(8, 4), torch.zeros(8, 4), delta)

    def test_normalize_refuses_a_non_finite_name(self):
        name = torch.ones(8, 4)
        name[2, 1] = float("inf")
        with pytest.raises(ValueError, match="name: expected finite values, found 1 NaN/inf entries of 32"):
            ns.normalize(name, 1.0)

    @pytest.mark.parametrize("scale", [1e18, 1e30, 1e-30])
    def test_normalize_a_huge_or_tiny_float32_name(self, generator, scale):
        """The Frobenius norm of 8 × 2048 float32 entries of 1e18 is beyond float32's range: in float32 it was inf
        and the name came out all zero. The norm is taken in float64."""
        name = torch.randn(8, 2048, generator=generator) * scale
        out = ns.normalize(name, 7.0)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double().norm(), torch.tensor(7.0, dtype=torch.float64))
        torch.testing.assert_close(out, ns.normalize(name / scale, 7.0))


def numpy_slerp(a, b, t):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    omega = math.acos(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


def extended_slerp(a, b, t):
    """Slerp in extended precision, with the angle from atan2 (arccos is inaccurate near π): the reference."""
    a, b = (np.asarray(x, dtype=np.float64).ravel().astype(np.longdouble) for x in (a, b))
    unit_a, unit_b = a / np.sqrt((a * a).sum()), b / np.sqrt((b * b).sum())
    chord, opposite_chord = np.sqrt(((unit_a - unit_b) ** 2).sum()), np.sqrt(((unit_a + unit_b) ** 2).sum())
    omega = 2 * np.arctan2(chord, opposite_chord)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float64)


def nearly_opposite(generator, gap, norm_b=1.0):
    """Two (8, 4) float64 names of norms 1 and ``norm_b`` whose angle is π − gap."""
    a, other = torch.linalg.qr(torch.randn(32, 2, generator=generator, dtype=torch.float64))[0].T
    b = norm_b * (math.cos(math.pi - gap) * a + math.sin(math.pi - gap) * other)
    return a.view(8, 4), b.view(8, 4)


class TestInterpolate:
    def test_lerp_formula_and_extrapolation(self, generator):
        a, b = randn(8, 16, generator=generator), randn(8, 16, generator=generator)
        for t in (0.0, 0.3, 1.0, -0.5, 1.5):
            torch.testing.assert_close(ns.interpolate(a, b, t), a + t * (b - a))

    def test_slerp_matches_reference_formula(self, generator):
        a, b = randn(8, 16, generator=generator), randn(8, 16, generator=generator)
        for t in (0.0, 0.25, 0.5, 1.0, 1.4, -0.3):
            expected = torch.from_numpy(numpy_slerp(a.numpy(), b.numpy(), t)).float().view(8, 16)
            torch.testing.assert_close(ns.interpolate(a, b, t, method="slerp"), expected, rtol=1e-5, atol=1e-5)

    def test_slerp_keeps_the_norm_of_equal_norm_names(self, generator):
        a, b = (
            ns.normalize(randn(8, 16, generator=generator), 3.0),
            ns.normalize(randn(8, 16, generator=generator), 3.0),
        )
        middle = ns.interpolate(a, b, 0.5, method="slerp")
        assert middle.norm().item() == pytest.approx(3.0, rel=1e-5)
        assert ns.interpolate(a, b, 0.5).norm().item() < 2.9  # lerp cuts the corner

    def test_sequence_of_steps_and_batches(self, generator):
        a, b = randn(2, 8, 4, generator=generator), randn(2, 8, 4, generator=generator)
        steps = ns.interpolate(a, b, [0.0, 0.5, 1.0], method="slerp")
        assert steps.shape == (3, 2, 8, 4)
        torch.testing.assert_close(steps[0], a)
        torch.testing.assert_close(steps[-1], b)
        expected = torch.from_numpy(numpy_slerp(a[1].numpy(), b[1].numpy(), 0.5)).float().view(8, 4)
        torch.testing.assert_close(steps[1, 1], expected, rtol=1e-5, atol=1e-5)

    def test_parallel_names_fall_back_to_lerp(self, generator):
        a = randn(8, 4, generator=generator)
        torch.testing.assert_close(ns.interpolate(a, 2 * a, 0.5, method="slerp"), 1.5 * a)

    def test_slerp_refuses_opposite_names(self, generator):
        a = randn(2, 8, 4, generator=generator)
        b = a.clone()
        b[1] = -a[1]
        message = r"a\[1\] and b\[1\]: slerp needs names that are not opposite .* got an angle of 3\.14159"
        with pytest.raises(ValueError, match=message):
            ns.interpolate(a, b, 0.5, method="slerp")
        torch.testing.assert_close(ns.interpolate(a, b, 0.5)[1], torch.zeros(8, 4))  # lerp: through zero

    def test_opposite_tolerance_follows_the_dtype(self, generator):
        a, b = nearly_opposite(generator, gap=1e-4)  # 1e-4 rad short of π: below float32's √ε, above float64's
        with pytest.raises(ValueError, match=r"^a and b: .* below π − 3\.5e-04 rad for torch\.float32"):
            ns.interpolate(a.float(), b.float(), 0.5, method="slerp")
        assert torch.isfinite(ns.interpolate(a, b, 0.5, method="slerp")).all()

    def test_slerp_refuses_an_all_zero_name(self, generator):
        a = randn(2, 8, 4, generator=generator)
        with pytest.raises(ValueError, match=r"^b\[0\]: slerp needs a non-zero name"):
            ns.interpolate(a, torch.zeros(2, 8, 4), 0.5, method="slerp")
        with pytest.raises(ValueError, match=r"^a: slerp needs a non-zero name"):
            ns.interpolate(torch.zeros(8, 4), a[0], 0.5, method="slerp")

    @pytest.mark.parametrize("norm_b", [1.0, 2.0])
    @pytest.mark.parametrize(("dtype", "gap", "tolerance"), [(torch.float32, 1e-3, 1e-6), (torch.float64, 1e-6, 1e-8)])
    def test_slerp_of_nearly_opposite_names_is_accurate(self, generator, dtype, gap, tolerance, norm_b):
        a, b = (x.to(dtype) for x in nearly_opposite(generator, gap, norm_b))
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            expected = torch.from_numpy(extended_slerp(a.numpy(), b.numpy(), t)).view(8, 4)
            result = ns.interpolate(a, b, t, method="slerp")
            torch.testing.assert_close(result.double(), expected, rtol=tolerance, atol=tolerance)

    def test_lerp_is_the_default_of_the_function_the_plugin_and_the_cli(self, capsys):
        import inspect

        import yaml

        from namespace.cli import main
        from namespace.inference import MagicNaming

        for function in (ns.interpolate, MagicNaming.interpolate):
            assert inspect.signature(function).parameters["method"].default == "lerp", function.__qualname__
        arguments = ["--encoder", "e", "--pipeline", "p", "--identities", "[a, b]", "--prompts", "[x]"]
        with pytest.raises(SystemExit) as done:
            main(["interpolate", *arguments, "--print_config"])
        assert done.value.code == 0
        assert yaml.safe_load(capsys.readouterr().out)["method"] == "lerp"

    def test_errors(self, generator):
        with pytest.raises(ValueError, match="method: expected 'lerp' or 'slerp'"):
            ns.interpolate(torch.ones(8, 4), torch.ones(8, 4), 0.5, method="cubic")
        with pytest.raises(ValueError, match="a and b must have the same shape"):
            ns.interpolate(torch.ones(8, 4), torch.ones(4, 4), 0.5)


class TestMix:
    def test_weighted_mean(self, generator):
        names = [randn(8, 4, generator=generator) for _ in range(3)]
        mixed = ns.mix(names, [1.0, 2.0, 1.0])
        torch.testing.assert_close(mixed, (names[0] + 2 * names[1] + names[2]) / 4)
        torch.testing.assert_close(ns.mix(torch.stack(names)), sum(names) / 3)

    def test_negative_weights_extrapolate(self, generator):
        a, b = randn(8, 4, generator=generator), randn(8, 4, generator=generator)
        torch.testing.assert_close(ns.mix([a, b], [2.0, -1.0]), 2 * a - b)

    def test_errors(self):
        with pytest.raises(ValueError, match="names: expected at least one name"):
            ns.mix([])
        with pytest.raises(ValueError, match="weights: expected 2 weights"):
            ns.mix([torch.ones(8, 4), torch.ones(8, 4)], [1.0])
        with pytest.raises(ValueError, match="must not sum to zero"):
            ns.mix([torch.ones(8, 4), torch.ones(8, 4)], [1.0, -1.0])
        with pytest.raises(ValueError, match=r"names\[1\] has shape"):
            ns.mix([torch.ones(8, 4), torch.ones(8, 5)])
