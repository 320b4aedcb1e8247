"""The plugin: equivalence with encode_prompt + eq. 4/5/1 by hand, and with the plain pipeline fed those
embeddings, for every SDXL-family pipeline kind; controls; bad input."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import namespace as ns
from namespace.inference import MagicNaming
from namespace.testing import (
    synthetic_face,
    tiny_sd15_pipeline,
    tiny_sdxl_controlnet_pipeline,
    tiny_sdxl_pipeline,
    tiny_sdxl_refiner_pipeline,
)

SMALL = {"num_inference_steps": 2, "height": 32, "width": 32, "output_type": "np"}


def seed(value=0):
    return torch.Generator().manual_seed(value)


@pytest.fixture
def naming(tiny_pipe, tiny_encoder):
    return MagicNaming(tiny_pipe, tiny_encoder)


@pytest.fixture
def alice(naming):
    return naming.identity([synthetic_face(1, v) for v in range(3)], label="alice")


@pytest.fixture
def bob(naming):
    return naming.identity([synthetic_face(2, v) for v in range(3)], label="bob")


def by_hand(pipe, encoder, prompt, identity, delta, eta, negative_prompt=None):
    """encode_prompt + eq. 4 + eq. 5 + eq. 1, written out without the plugin."""
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(prompt, negative_prompt=negative_prompt)
    mean = encoder.name_mean
    name = mean + delta * (identity.embedding - mean)  # eq. 4
    name = eta * name / name.norm()  # eq. 5, Frobenius norm over (N, D)
    n = name.shape[0]
    named = torch.cat([embeds[:, :1], name.expand(embeds.shape[0], -1, -1), embeds[:, 1 : 77 - n]], dim=1)  # eq. 1
    return named, negative, pooled, negative_pooled


class TestEquivalence:
    def test_prompt_embeds_equal_encode_prompt_and_equations_by_hand(self, naming, alice, tiny_pipe, tiny_encoder):
        embeds = naming.prompt_embeds("a person riding a horse", alice, negative_prompt="blurry", delta=1.7, eta=9.0)
        expected = by_hand(tiny_pipe, tiny_encoder, "a person riding a horse", alice, 1.7, 9.0, "blurry")
        keys = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
        for key, value in zip(keys, [expected[0], expected[1], expected[2], expected[3]], strict=True):
            torch.testing.assert_close(embeds[key], value, rtol=1e-6, atol=1e-6, msg=key)

    def test_defaults_come_from_the_encoder_statistics(self, naming, alice, tiny_pipe, tiny_encoder):
        embeds = naming.prompt_embeds("a person", alice)
        expected = by_hand(tiny_pipe, tiny_encoder, "a person", alice, 1.0, tiny_encoder.statistics.norm)[0]
        torch.testing.assert_close(embeds["prompt_embeds"], expected, rtol=1e-6, atol=1e-6)
        assert embeds["prompt_embeds"][0, 1:9].norm().item() == pytest.approx(tiny_encoder.statistics.norm, rel=1e-5)

    def test_text_to_image_equals_plain_pipeline_fed_the_embeddings(self, naming, alice, tiny_pipe):
        plugin = naming("a person riding a horse", alice, delta=1.3, generator=seed(), **SMALL).images
        embeds = naming.prompt_embeds("a person riding a horse", alice, delta=1.3)
        plain = tiny_pipe(**embeds, generator=seed(), **SMALL).images
        assert (plugin == plain).all()

    @pytest.mark.slow
    @pytest.mark.parametrize("kind", ["img2img", "inpaint"])
    def test_img2img_and_inpainting_equal_plain_pipeline(self, kind, tiny_encoder, alice):
        from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline

        cls = {"img2img": StableDiffusionXLImg2ImgPipeline, "inpaint": StableDiffusionXLInpaintPipeline}[kind]
        pipe = tiny_sdxl_pipeline(cls)
        naming = MagicNaming(pipe, tiny_encoder)
        inputs = {"image": synthetic_face(5, 0, 32), "strength": 0.7, "num_inference_steps": 4, "output_type": "np"}
        if kind == "inpaint":
            mask = Image.new("L", (32, 32), 0)
            mask.paste(255, (8, 8, 24, 24))
            inputs.update(mask_image=mask, height=32, width=32)
        plugin = naming("a person", alice, generator=seed(), **inputs).images
        plain = pipe(**naming.prompt_embeds("a person", alice), generator=seed(), **inputs).images
        assert (plugin == plain).all()
        without = pipe("a person", generator=seed(), **inputs).images
        assert not (plugin == without).all()

    @pytest.mark.slow
    def test_controlnet_equals_plain_pipeline(self, tiny_encoder, alice):
        pipe = tiny_sdxl_controlnet_pipeline()
        naming = MagicNaming(pipe, tiny_encoder)
        control = synthetic_face(7, 0, 32)
        plugin = naming("a person", alice, image=control, generator=seed(), **SMALL).images
        plain = pipe(**naming.prompt_embeds("a person", alice), image=control, generator=seed(), **SMALL).images
        assert (plugin == plain).all()

    @pytest.mark.slow
    def test_refiner_takes_the_bigg_part_of_the_name(self, tiny_encoder, alice):
        pipe = tiny_sdxl_refiner_pipeline()
        naming = MagicNaming(pipe, tiny_encoder)
        embeds = naming.prompt_embeds("a person", alice)
        full = naming.name(alice)  # the refiner's slice of the scaled name
        scaled = ns.normalize(alice.embedding, tiny_encoder.statistics.norm)
        torch.testing.assert_close(full, scaled[:, 32:])  # CLIP-L is 32 wide, bigG 48 in the tiny pipeline
        torch.testing.assert_close(embeds["prompt_embeds"][0, 1:9], scaled[:, 32:])
        image = synthetic_face(5, 0, 32)
        plugin = naming("a person", alice, image=image, num_inference_steps=4, generator=seed(), output_type="np")
        plain = pipe(**embeds, image=image, num_inference_steps=4, generator=seed(), output_type="np")
        assert (plugin.images == plain.images).all()

    def test_no_identity_equals_the_plain_pipeline(self, naming, tiny_pipe):
        plugin = naming("a person riding a horse", None, generator=seed(), **SMALL).images
        plain = tiny_pipe("a person riding a horse", generator=seed(), **SMALL).images
        assert (plugin == plain).all()

    def test_a_different_identity_changes_the_image(self, naming, alice):
        stranger = naming.sample(seed=3)[0]  # the untrained tiny encoder maps all faces close together: sample
        first = naming("a person", alice, generator=seed(), **SMALL).images
        second = naming("a person", stranger, generator=seed(), **SMALL).images
        assert torch.from_numpy(first - second).abs().max() > 1e-2


class TestBatches:
    def test_batched_prompts_and_images_per_prompt(self, naming, alice, tiny_pipe):
        prompts = ["a person riding a horse", "a person reading"]
        embeds = naming.prompt_embeds(prompts, alice, num_images_per_prompt=3)
        assert embeds["prompt_embeds"].shape == (6, 77, 80) and embeds["pooled_prompt_embeds"].shape == (6, 40)
        reference, *_ = tiny_pipe.encode_prompt(prompts, num_images_per_prompt=3)
        torch.testing.assert_close(embeds["prompt_embeds"][:, 9:], reference[:, 1:69])  # same prompt order
        images = naming(prompts, alice, num_images_per_prompt=2, generator=seed(), **SMALL).images
        assert images.shape == (4, 32, 32, 3)

    def test_one_identity_per_prompt(self, naming, alice, bob):
        embeds = naming.prompt_embeds(["a person", "a person"], [alice, bob], num_images_per_prompt=2)["prompt_embeds"]
        torch.testing.assert_close(embeds[0, 1:9], naming.name(alice))
        torch.testing.assert_close(embeds[1, 1:9], naming.name(alice))
        torch.testing.assert_close(embeds[2, 1:9], naming.name(bob))

    def test_half_precision_pipeline_gets_names_in_its_dtype(self, tiny_encoder, alice):
        pipe = tiny_sdxl_pipeline().to(torch.bfloat16)
        embeds = MagicNaming(pipe, tiny_encoder).prompt_embeds("a person", alice)
        assert embeds["prompt_embeds"].dtype == torch.bfloat16
        assert next(tiny_encoder.head.parameters()).dtype == torch.float32  # the head stays fp32

    def test_plugin_registers_nothing_on_the_pipeline(self, tiny_pipe, tiny_encoder, alice):
        before = dict(tiny_pipe.components)
        MagicNaming(tiny_pipe, tiny_encoder)("a person", alice, generator=seed(), **SMALL)
        assert tiny_pipe.components.keys() == before.keys()
        assert all(tiny_pipe.components[k] is v for k, v in before.items())

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="model CPU offload needs an accelerator")
    def test_model_cpu_offload(self, tiny_encoder, alice):
        pipe = tiny_sdxl_pipeline()
        pipe.enable_model_cpu_offload()
        image = MagicNaming(pipe, tiny_encoder)("a person", alice, generator=seed(), **SMALL).images
        assert image.shape == (1, 32, 32, 3)


class TestControls:
    def test_negative_name_mean(self, tiny_pipe, tiny_encoder, alice):
        naming = MagicNaming(tiny_pipe, tiny_encoder, negative_name="mean")
        negative = naming.prompt_embeds("a person", alice, negative_prompt="ugly")["negative_prompt_embeds"]
        mean = ns.normalize(tiny_encoder.name_mean, tiny_encoder.statistics.norm)
        torch.testing.assert_close(negative[0, 1:9], mean)

    def test_clip_skip_warns(self, naming, alice):
        with pytest.warns(UserWarning, match="names live in the penultimate"):
            naming.prompt_embeds("a person", alice, clip_skip=1)

    def test_long_prompt_warns(self, naming, alice):
        with pytest.warns(UserWarning, match="longer prompts are cut"):
            naming.prompt_embeds(" ".join(["horse"] * 70), alice)

    def test_full_step_window_equals_no_window(self, naming, alice):
        full = naming("a person", alice, step_window=(0.0, 1.0), generator=seed(), **SMALL).images
        always = naming("a person", alice, generator=seed(), **SMALL).images
        assert (full == always).all()

    @pytest.mark.slow
    def test_empty_step_window_equals_no_identity(self, naming, alice, tiny_pipe):
        options = {**SMALL, "num_inference_steps": 4}  # steps at 0, .25, .5, .75: none in [0.9, 1)
        late = naming("a person", alice, step_window=(0.9, 1.0), generator=seed(), **options).images
        plain = tiny_pipe("a person", generator=seed(), **options).images
        assert (late == plain).all()

    @pytest.mark.slow
    def test_step_window_applies_the_name_in_its_steps_only(self, naming, alice, monkeypatch):
        from namespace.inference import step_window

        seen = []
        original = step_window.StepWindowCallback.__call__

        def spy(self, pipe, step, timestep, kwargs):
            seen.append((step, bool(torch.equal(kwargs["prompt_embeds"][1:], self.named))))
            return original(self, pipe, step, timestep, kwargs)

        monkeypatch.setattr(step_window.StepWindowCallback, "__call__", spy)
        user_steps = []
        naming(
            "a person",
            alice,
            step_window=(0.5, 1.0),
            callback_on_step_end=lambda pipe, step, t, kwargs: user_steps.append(step) or {},
            generator=seed(),
            **{**SMALL, "num_inference_steps": 4},
        )
        assert seen == [(0, False), (1, False), (2, True), (3, True)]
        assert user_steps == [0, 1, 2, 3]  # the caller's own callback still runs

    def test_bad_step_window(self, naming, alice):
        with pytest.raises(ValueError, match=r"step_window: expected 0 <= start < end <= 1, got \(0.8, 0.2\)"):
            naming("a person", alice, step_window=(0.8, 0.2), **SMALL)


class TestIdentities:
    def test_references_are_averaged(self, naming, tiny_encoder):
        faces = [synthetic_face(3, v) for v in range(2)]
        torch.testing.assert_close(naming.identity(faces).embedding, tiny_encoder.encode(faces).mean(0))

    def test_identity_files_interpolation_mix_and_sampling(self, naming, alice, bob, tmp_path):
        loaded = naming.load(alice.save(tmp_path / "alice.safetensors"))
        assert torch.equal(loaded.embedding, alice.embedding)
        half = naming.interpolate(alice, bob, 0.5, method="lerp")
        torch.testing.assert_close(half.embedding, (alice.embedding + bob.embedding) / 2)
        assert half.source == "interpolation" and half.metadata["t"] == "0.5"
        mixed = naming.mix([alice, bob], [3, 1])
        torch.testing.assert_close(mixed.embedding, 0.75 * alice.embedding + 0.25 * bob.embedding)
        first, second = naming.sample(2, seed=4)
        assert first.source == "sampling" and not torch.equal(first.embedding, second.embedding)
        assert torch.equal(naming.sample(2, seed=4)[1].embedding, second.embedding)

    def test_identity_from_text_is_a_candidate_cluster_mean(self, naming, tiny_encoder):
        options = {"num_inference_steps": 1, "height": 32, "width": 32}
        identity = naming.identity_from_text("a woman with red hair", num_candidates=6, num_clusters=2, **options)
        assert identity.source == "text" and int(identity.metadata["cluster_size"]) >= 2
        # the same candidates again, encoded: the identity is the mean of one subset of them
        generator = seed(0)
        images = []
        for count in (4, 2):
            images += naming.pipe(
                "a woman with red hair", num_images_per_prompt=count, generator=generator, **options
            ).images
        names = tiny_encoder.encode(images)
        from itertools import combinations

        size = int(identity.metadata["cluster_size"])
        assert any(
            torch.allclose(names[list(subset)].mean(0), identity.embedding, atol=1e-6)
            for subset in combinations(range(6), size)
        )

    def test_a_large_agreeing_cluster_wins_over_a_tight_pair(self):
        from namespace.inference.text_identity import most_consistent_cluster

        generator = seed(1)
        mean = 5 * torch.randn(8, 16, generator=generator)  # raw names share it: their raw cosines are all ~0.98
        look = lambda count, spread: (  # noqa: E731
            mean + torch.randn(8, 16, generator=generator) + spread * torch.randn(count, 8, 16, generator=generator)
        )
        loose, large, pair = look(6, 1.0), look(8, 0.7), look(2, 0.01)
        cluster = most_consistent_cluster(torch.cat([loose, large, pair]), mean, num_clusters=3, seed=0)
        assert cluster.members.tolist() == list(range(6, 14))  # the 8 agreeing names; the pair is tighter
        assert 0.6 < cluster.cohesion < 0.8
        assert cluster.agreement == pytest.approx(8 * 7 * cluster.cohesion)

    def test_names_are_centred_so_unrelated_names_do_not_agree(self):
        from namespace.inference.text_identity import most_consistent_cluster

        generator = seed(1)
        mean = 5 * torch.randn(8, 16, generator=generator)
        tight = mean + torch.randn(8, 16, generator=generator) + 0.01 * torch.randn(3, 8, 16, generator=generator)
        unrelated = mean + torch.randn(9, 8, 16, generator=generator)  # raw cosines ~0.96, centred ~0
        cluster = most_consistent_cluster(torch.cat([unrelated, tight]), mean, num_clusters=3, seed=0)
        chosen = set(cluster.members.tolist())
        assert {9, 10, 11} <= chosen and len(chosen) <= 4  # k-means may add one stray name to the tight group

    def test_clustering_a_few_candidates_warns_nothing(self, capfd):
        import warnings

        from namespace.inference.text_identity import most_consistent_cluster

        names = torch.randn(16, 8, 16, generator=seed(2))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            most_consistent_cluster(names, torch.zeros(8, 16), num_clusters=3)
        assert "WARNING" not in capfd.readouterr().err  # faiss prints "please provide at least N training points"


class TestPlaceholders:
    def test_names_are_spliced_at_their_placeholders(self, naming, alice, bob, tiny_pipe):
        naming.register("alice", alice)
        naming.register("bob", bob)
        embeds = naming.prompt_embeds("<alice> and <bob> at the market")["prompt_embeds"][0]
        reference = tiny_pipe.encode_prompt("person and person at the market", do_classifier_free_guidance=False)[0][0]
        torch.testing.assert_close(embeds[0], reference[0])  # start token
        torch.testing.assert_close(embeds[1:9], naming.name(alice))  # <alice> replaces "person" (position 1)
        torch.testing.assert_close(embeds[9], reference[2])  # "and"
        torch.testing.assert_close(embeds[10:18], naming.name(bob))  # <bob> replaces position 3
        torch.testing.assert_close(embeds[18:], reference[4:63])  # the rest, cut back to 77

    def test_one_identity_without_placeholder_prepends(self, naming, alice, tiny_pipe, tiny_encoder):
        naming.register("alice", alice)
        embeds = naming.prompt_embeds("a person", alice)["prompt_embeds"]
        torch.testing.assert_close(
            embeds, by_hand(tiny_pipe, tiny_encoder, "a person", alice, 1.0, tiny_encoder.statistics.norm)[0]
        )

    def test_unknown_placeholder(self, naming, alice):
        naming.register("alice", alice)
        with pytest.raises(ValueError, match=r"unknown placeholder\(s\) <carol>; registered: <alice>"):
            naming.prompt_embeds("<alice> and <carol>")

    def test_placeholders_and_an_identity_argument_do_not_mix(self, naming, alice):
        naming.register("alice", alice)
        with pytest.raises(ValueError, match=r"prompt\(s\) \[0\] name people with <placeholders>"):
            naming.prompt_embeds("<alice> at the beach", alice)

    def test_a_name_past_the_last_position_is_refused(self, naming, alice):
        naming.register("alice", alice)
        fits = " ".join(["horse"] * 68) + " <alice>"  # the filler at position 69: the name takes 69..76, the last
        torch.testing.assert_close(naming.prompt_embeds(fits)["prompt_embeds"][0, 69:77], naming.name(alice))
        with pytest.raises(ValueError, match=r"<alice> at positions 70\.\.77 would fall past the last position \(76\)"):
            naming.prompt_embeds("horse " + fits)

    def test_bad_label(self, naming, alice):
        with pytest.raises(ValueError, match="label: expected letters"):
            naming.register("two words", alice)


class TestBadInput:
    def test_sd15_pipeline(self, tiny_encoder):
        with pytest.raises(TypeError, match=r"expected an SDXL-family diffusers pipeline .* StableDiffusionPipeline"):
            MagicNaming(tiny_sd15_pipeline(), tiny_encoder)

    def test_encoder_of_another_width(self, tiny_pipe):
        from namespace.testing import tiny_name_encoder_config

        encoder = ns.NameEncoder(tiny_name_encoder_config(width=64), load_towers=False)
        with pytest.raises(ValueError, match="the encoder predicts names of width 64, but StableDiffusionXLPipeline's"):
            MagicNaming(tiny_pipe, encoder)

    def test_identity_of_the_wrong_width(self, naming):
        stranger = ns.Identity(torch.randn(8, 2048))
        with pytest.raises(
            ValueError, match=r"has shape \(N, D\) = \(8, 2048\), but this encoder's names are \(8, 80\)"
        ):
            naming.prompt_embeds("a person", stranger)

    def test_empty_references_and_unreadable_image(self, naming, tmp_path):
        with pytest.raises(ValueError, match="images: expected at least one image, got an empty list"):
            naming.identity([])
        broken = tmp_path / "face.jpg"
        broken.write_bytes(b"\xff\xd8 not really a jpeg")
        with pytest.raises(ValueError, match=r"images\[0\]: .*face.jpg' is not a readable image file"):
            naming.identity([broken])

    def test_identity_count_must_match_prompts(self, naming, alice):
        with pytest.raises(ValueError, match="identity: expected one identity or 2"):
            naming.prompt_embeds(["a", "b"], [alice, alice, alice])

    @pytest.mark.parametrize("value", [float("nan"), float("inf")])
    def test_nan_or_infinite_delta_and_eta_are_refused(self, tiny_pipe, tiny_encoder, naming, alice, value):
        """They used to give a NaN or infinite name, drawn as an all-black image with no error (the app's API too)."""
        with pytest.raises(ValueError, match="delta: expected a finite name guidance δ, got"):
            MagicNaming(tiny_pipe, tiny_encoder, delta=value)
        with pytest.raises(ValueError, match="delta: expected a finite name guidance δ, got"):
            naming.delta = value
        with pytest.raises(ValueError, match="delta: expected a finite name guidance δ, got"):
            naming.prompt_embeds("a person", alice, delta=value)
        with pytest.raises(ValueError, match="eta: expected a finite name norm η > 0, got"):
            naming("a person", alice, eta=value, **SMALL)
        with pytest.raises(ValueError, match=r"eta: expected a finite name norm η > 0, got -1\.0"):
            naming.name(alice, eta=-1.0)

    def test_a_huge_finite_identity_is_scaled_to_eta_not_to_zero(self, naming, alice):
        """8 × 80 float32 entries of ~1e19 have a norm beyond float32's range: the name used to come out all zero."""
        huge = ns.Identity(alice.embedding / alice.embedding.abs().max() * 1e19)
        name = naming.name(huge, delta=1.0, eta=5.0)
        assert name.dtype == torch.float32
        torch.testing.assert_close(name.double().norm(), torch.tensor(5.0, dtype=torch.float64))
        torch.testing.assert_close(name, naming.name(alice, delta=1.0, eta=5.0))


class TestEncoderPrecisionAndDelta:
    @pytest.mark.slow
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
    def test_a_half_precision_encoder_works_with_every_plugin_call(self, dtype, tiny_pipe, tmp_path):
        """The statistics stay float32 (unrounded) when the encoder is cast: names equal the fp32 encoder's."""
        from namespace.testing import tiny_name_encoder

        reference, encoder = tiny_name_encoder(tiny_pipe), tiny_name_encoder(tiny_pipe).to(dtype)
        assert next(encoder.head.parameters()).dtype == next(encoder.towers.parameters()).dtype == dtype
        for key in ("name_mean", "name_norm", "pca_components", "pca_variances", "name_delta"):
            assert torch.equal(getattr(encoder, key), getattr(reference, key)), key  # float32, not rounded
        naming = MagicNaming(tiny_pipe, encoder, delta=1.5, negative_name="mean")
        exact = MagicNaming(tiny_pipe, reference, delta=1.5, negative_name="mean")
        faces = [synthetic_face(1, v) for v in range(2)]
        alice = naming.identity(faces, label="alice")
        assert alice.embedding.dtype == torch.float32
        torch.testing.assert_close(alice.embedding, exact.identity(faces).embedding, rtol=0.05, atol=0.05)
        bob = naming.load(naming.identity([synthetic_face(2, 0)]).save(tmp_path / "bob.safetensors"))
        options = {"num_inference_steps": 1, "height": 32, "width": 32}
        people = [alice, bob, naming.interpolate(alice, bob, 0.5), naming.mix([alice, bob]), *naming.sample(1)]
        people.append(naming.identity_from_text("a woman", num_candidates=4, num_clusters=2, **options))
        for person in people:
            embeds = naming.prompt_embeds("a person", person, negative_prompt="blurry")
            expected = exact.prompt_embeds("a person", person, negative_prompt="blurry")
            for key, value in expected.items():
                torch.testing.assert_close(embeds[key], value, rtol=0, atol=0, msg=f"{person.label}: {key}")
        images = naming(["a person", "a person"], [alice, people[-1]], generator=seed(), **SMALL).images
        assert images.shape == (2, 32, 32, 3) and np.isfinite(images).all()

    def test_a_sampled_identity_under_the_default_delta_is_the_sample_itself(self, tiny_pipe, tiny_encoder):
        """Identities hold names before guidance: a sample of the name space, guided by the calibrated δ, comes back
        as drawn (not pushed δ times further from F_mean)."""
        tiny_encoder.set_statistics(dataclasses.replace(tiny_encoder.statistics, delta=1.7))
        naming = MagicNaming(tiny_pipe, tiny_encoder)
        drawn = tiny_encoder.statistics.sample(2, generator=torch.Generator().manual_seed(5))  # (2, N, D), norm η
        for k, identity in enumerate(naming.sample(2, seed=5)):
            torch.testing.assert_close(naming.name(identity), drawn[k], rtol=1e-5, atol=1e-5)

    def test_no_delta_means_the_encoders_calibrated_delta(self, tiny_pipe, tiny_encoder, alice):
        statistics = dataclasses.replace(tiny_encoder.statistics, delta=1.7)
        tiny_encoder.set_statistics(statistics)
        naming = MagicNaming(tiny_pipe, tiny_encoder)
        assert naming.delta == tiny_encoder.statistics.delta == pytest.approx(1.7)
        default = naming.prompt_embeds("a person", alice)["prompt_embeds"]
        explicit = MagicNaming(tiny_pipe, tiny_encoder, delta=1.7).prompt_embeds("a person", alice)["prompt_embeds"]
        torch.testing.assert_close(default, explicit, rtol=0, atol=0)
        expected = by_hand(tiny_pipe, tiny_encoder, "a person", alice, 1.7, tiny_encoder.statistics.norm)[0]
        torch.testing.assert_close(default, expected, rtol=1e-6, atol=1e-6)
        off = MagicNaming(tiny_pipe, tiny_encoder, delta=1.0).prompt_embeds("a person", alice)["prompt_embeds"]
        assert not torch.allclose(default, off)
