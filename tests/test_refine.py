"""Name refinement on the tiny SDXL: the frozen pipeline's denoising loss falls, only the name moves, the prior holds
it near the name space, bad input is named before anything runs, and the command writes an identity that draws."""

import sys

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from PIL import Image
from safetensors.torch import save_file
from torchvision.transforms.functional import to_tensor

from namespace import Identity
from namespace.cli import main
from namespace.faces import Face, FaceStackMissing
from namespace.inference import MagicNaming
from namespace.inference.refine import RefinementDiverged, face_weights, refine_identity
from namespace.testing import synthetic_face

from .conftest import says

SIZE = 32  # the tiny pipeline's images
FAST = {"gradient_checkpointing": False, "progress_every": 0}


@pytest.fixture
def naming(tiny_pipe, tiny_encoder):
    return MagicNaming(tiny_pipe, tiny_encoder)


@pytest.fixture(scope="module")
def photos():
    return [synthetic_face(3, variant, 64) for variant in range(3)]


@pytest.fixture
def start(naming, photos):
    return naming.identity(photos, label="carol", check_faces=False)


def plugin_loss(naming: MagicNaming, identity: Identity, photos: list, draws: int = 12, seed: int = 123) -> float:
    """The epsilon loss of the UNet prompted through the plugin's own embeddings (``naming.prompt_embeds``) on the
    photos' latents, at fixed timesteps and noise: written apart from ``refine``'s objective, so it checks it."""
    pipe = naming.pipe
    embeds = naming.prompt_embeds("a photo of a person", identity)
    pixels = torch.stack([to_tensor(p.resize((SIZE, SIZE), Image.BICUBIC)) * 2 - 1 for p in photos])
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    generator = torch.Generator().manual_seed(seed)
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (draws,), generator=generator)
    with torch.no_grad():
        latents = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
        latents = latents[torch.arange(draws) % len(photos)]
        noise = torch.randn(latents.shape, generator=generator)
        conditioning = {
            "text_embeds": embeds["pooled_prompt_embeds"].expand(draws, -1),
            "time_ids": torch.tensor([[SIZE, SIZE, 0, 0, SIZE, SIZE]], dtype=torch.float32).expand(draws, -1),
        }
        prediction = pipe.unet(
            scheduler.add_noise(latents, noise, timesteps),
            timesteps,
            encoder_hidden_states=embeds["prompt_embeds"].expand(draws, -1, -1),
            added_cond_kwargs=conditioning,
        ).sample
    return float((prediction - noise).square().mean())


def outside_norm(naming: MagicNaming, identity: Identity) -> float:
    """‖r‖: the part of the name as the pipeline receives it (eq. 4, 5) outside the name space's PCA subspace."""
    statistics = naming.encoder.statistics
    name = naming.name(identity)
    centred = (name - statistics.mean).flatten()
    inside = statistics.components @ centred
    return float((centred - statistics.components.T @ inside).norm())


def model_state(pipe) -> dict:
    """Every weight, gradient flag and train/eval mode of the pipeline's models (copied)."""
    state = {}
    for part, model in pipe.components.items():
        if isinstance(model, torch.nn.Module):
            state |= {f"{part}.{key}": value.clone() for key, value in model.state_dict().items()}
            state |= {f"{part}.{key}:grad": p.requires_grad for key, p in model.named_parameters()}
            state |= {f"{part}.{key}:training": m.training for key, m in model.named_modules()}
    state["unet:checkpointing"] = pipe.unet.is_gradient_checkpointing
    return state


def assert_same_state(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    changed = [key for key in before if not (torch.equal if torch.is_tensor(before[key]) else (lambda a, b: a == b))(
        before[key], after[key])]  # fmt: skip
    assert changed == []


class TestRefinement:
    def test_a_few_steps_lower_the_denoising_loss_and_move_the_name(self, naming, start, photos):
        refined = naming.refine(start, photos, steps=10, learning_rate=0.05, prior_weight=0.0, **FAST)
        assert not torch.equal(refined.embedding, start.embedding)  # a refine that returns its start fails here
        before, after = plugin_loss(naming, start, photos), plugin_loss(naming, refined, photos)
        assert after < before - 1e-5, (before, after)
        assert float(refined.metadata["final_loss"]) < float(refined.metadata["start_loss"])

    def test_the_result_is_an_ordinary_identity_with_its_record(self, naming, start, photos, tmp_path):
        refined = naming.refine(start, photos, steps=2, learning_rate=0.01, prior_weight=0.5, seed=7, **FAST)
        assert (refined.label, refined.source, refined.embedding.shape) == ("carol", "images", start.embedding.shape)
        expected = {"refined": "true", "from": "carol (images)", "steps": "2", "prior_weight": "0.5",
                    "learning_rate": "0.01", "seed": "7", "num_references": "3"}  # fmt: skip
        assert expected.items() <= refined.metadata.items()
        assert float(refined.metadata["final_loss"]) > 0
        loaded = Identity.load(refined.save(tmp_path / "carol.safetensors"))
        assert torch.equal(loaded.embedding, refined.embedding) and loaded.metadata == refined.metadata

    def test_only_the_name_changes(self, naming, start, photos):
        before = model_state(naming.pipe)
        encoder_before = {k: v.clone() for k, v in naming.encoder.state_dict().items()}
        naming.refine(start, photos, steps=2, learning_rate=0.05, gradient_checkpointing=True, progress_every=0)
        assert_same_state(before, model_state(naming.pipe))  # weights, requires_grad, eval mode, checkpointing
        assert all(p.grad is None for m in naming.pipe.components.values() if isinstance(m, torch.nn.Module)
                   for p in m.parameters())  # fmt: skip
        assert all(torch.equal(v, encoder_before[k]) for k, v in naming.encoder.state_dict().items())

    def test_the_prior_holds_the_name_near_the_name_space(self, naming, start, photos):
        options = {"steps": 10, "learning_rate": 0.2, **FAST}
        free = naming.refine(start, photos, prior_weight=0.0, **options)
        held = naming.refine(start, photos, prior_weight=100.0, **options)
        far, near = outside_norm(naming, free), outside_norm(naming, held)
        assert near < 0.5 * far, (near, far)
        assert near < outside_norm(naming, start)  # pulled in, not only kept from drifting

    def test_a_seed_gives_one_name(self, naming, start, photos):
        options = {"steps": 3, "learning_rate": 0.05, "batch_size": 2, **FAST}
        first, again = (naming.refine(start, photos, seed=1, **options) for _ in range(2))
        other = naming.refine(start, photos, seed=2, **options)
        assert torch.equal(first.embedding, again.embedding)
        assert not torch.equal(first.embedding, other.embedding)

    def test_without_a_start_it_starts_from_the_encoders_prediction(self, naming, start, photos):
        refined = naming.refine(None, photos, steps=1, label="carol", **FAST)
        assert refined.metadata["from"] == "carol (images)" and refined.label == "carol"
        assert float(refined.metadata["start_loss"]) == pytest.approx(
            float(naming.refine(start, photos, steps=1, **FAST).metadata["start_loss"])
        )


def nan_forward(monkeypatch):
    """The UNet predicts NaN from now on (in this test)."""
    forward = UNet2DConditionModel.forward

    def broken(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        if isinstance(output, tuple):  # return_dict=False
            return (output[0] * torch.nan,)
        return type(output)(sample=output.sample * torch.nan)

    monkeypatch.setattr(UNet2DConditionModel, "forward", broken)


class TestBadInput:
    def test_a_nan_loss_stops_with_an_error_and_restores_the_pipeline(self, naming, start, photos, monkeypatch):
        before = model_state(naming.pipe)
        nan_forward(monkeypatch)
        with pytest.raises(RefinementDiverged, match=r"diverged at step 1 of 5: the loss is nan.*learning_rate"):
            naming.refine(start, photos, steps=5, gradient_checkpointing=True, progress_every=0)
        monkeypatch.undo()
        assert_same_state(before, model_state(naming.pipe))

    def test_every_bad_option_is_named_in_one_error(self, naming, start, photos):
        with pytest.raises(ValueError) as error:
            refine_identity(naming, start, photos, steps=0, learning_rate=0.0, prior_weight=-1.0, batch_size=0)
        for argument in ("steps", "learning_rate", "prior_weight", "batch_size"):
            assert says(str(error.value), f"{argument}: expected")

    def test_an_identity_of_another_width_is_refused(self, naming, photos):
        other = Identity(torch.randn(8, 64), label="wide")
        with pytest.raises(ValueError, match=r"identity 'wide' has shape \(N, D\) = \(8, 64\)"):
            naming.refine(other, photos, steps=1)

    def test_no_usable_reference_is_refused(self, naming, start, tmp_path):
        with pytest.raises(ValueError, match="images: expected at least one image"):
            naming.refine(start, [], steps=1)
        with pytest.raises(ValueError, match="holds no image files"):
            naming.refine(start, tmp_path, steps=1)

    def test_face_weight_without_the_face_stack_names_the_extra(self, naming, start, photos, monkeypatch):
        monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now fails as if it were not installed
        with pytest.raises(FaceStackMissing, match=r"face_weight=2.*magicnaming\[faces\]"):
            naming.refine(start, photos, steps=1, face_weight=2.0)


class TestUNetConditioning:
    @pytest.mark.parametrize("family", ["base", "refiner"])
    def test_the_text_side_conditions_the_unet_as_the_pipeline_does(self, family, tiny_pipe, monkeypatch):
        from namespace.testing import tiny_sdxl_refiner_pipeline
        from namespace.text_sides import text_side

        pipe = tiny_pipe if family == "base" else tiny_sdxl_refiner_pipeline()
        seen = []
        forward = UNet2DConditionModel.forward

        def spy(self, *args, **kwargs):
            seen.append(kwargs["added_cond_kwargs"])
            return forward(self, *args, **kwargs)

        monkeypatch.setattr(UNet2DConditionModel, "forward", spy)
        options = {"num_inference_steps": 2, "guidance_scale": 1.0, "output_type": "latent"}  # no guidance: batch 1
        if family == "base":
            pipe("a photo of a person", height=SIZE, width=SIZE, **options)
        else:
            pipe("a photo of a person", image=Image.new("RGB", (SIZE, SIZE)), strength=1.0, **options)
        side = text_side(pipe)
        expected = side.unet_conditioning(pipe, side.encode(pipe, ["a photo of a person"]), SIZE, SIZE)
        assert expected.keys() == {"added_cond_kwargs"} and seen
        for key, value in expected["added_cond_kwargs"].items():
            torch.testing.assert_close(value, seen[0][key], rtol=0, atol=0, msg=key)


class TestFaceWeights:
    def test_the_face_box_weighs_more_and_a_photo_without_a_face_evenly(self):
        class Detector:  # finds a face in the first photo only
            def detect(self, image):
                return [Face((8.0, 4.0, 20.0, 15.0), None, 1.0)] if image.getpixel((0, 0)) == (0, 0, 0) else []

        photos = [Image.new("RGB", (SIZE, SIZE)), Image.new("RGB", (SIZE, SIZE), (9, 9, 9))]
        with pytest.warns(UserWarning, match=r"images\[1\]: no face found"):
            weights = face_weights(photos, 3.0, factor=2, faces=Detector())
        assert weights.shape == (2, 1, 16, 16)
        expected = torch.ones(16, 16)
        expected[2:8, 4:10] = 4.0  # rows 4..15 px, columns 8..20 px, in 2-px cells (rounded outwards)
        assert torch.equal(weights[0, 0], expected) and torch.equal(weights[1, 0], torch.ones(16, 16))


@pytest.fixture(scope="module")
def references(tmp_path_factory, photos):
    folder = tmp_path_factory.mktemp("carol")
    for index, photo in enumerate(photos):
        photo.save(folder / f"ref{index}.png")
    return folder


class TestCommand:
    def test_refine_writes_an_identity_that_generate_draws(self, tiny_models, references, tmp_path, capfd):
        encoder, pipeline = str(tiny_models.encoder), str(tiny_models.pipeline)
        output = tmp_path / "carol.safetensors"
        args = ["identity", "refine", "--encoder", encoder, "--pipeline", pipeline, "--references", str(references)]
        args += ["--output", str(output), "--steps", "4", "--learning_rate", "0.05", "--seed", "3"]
        assert main(args) == 0
        refined = Identity.load(output)
        assert refined.label == "carol" and refined.encoder == encoder
        expected = {"refined": "true", "from": "carol (images)", "steps": "4", "prior_weight": "1",
                    "learning_rate": "0.05", "seed": "3"}  # fmt: skip
        assert expected.items() <= refined.metadata.items() and float(refined.metadata["final_loss"]) > 0
        err = capfd.readouterr().err
        assert says(err, "[4/4]", "refining", "4 steps") and says(err, "refine step 4/4", "denoising loss")
        assert says(err, "wrote", str(output), "refined 4 steps")
        assert main(args) == 1 and says(capfd.readouterr().err, "--output", "already exists", "--overwrite")
        assert main([*args, "--identity", str(output), "--steps", "1", "--overwrite", "true"]) == 0
        again = Identity.load(output)  # refined once more, from the refined name
        assert again.metadata["from"] == "carol (images)" and again.metadata["steps"] == "1"
        assert not torch.equal(again.embedding, refined.embedding)
        drawn = tmp_path / "drawn"
        args = ["generate", "--encoder", encoder, "--pipeline", pipeline, "--identity", str(output)]
        args += ["--prompts", '["a person"]', "--output", str(drawn), "--num_inference_steps", "2"]
        assert main(args) == 0
        assert Image.open(drawn / "000-00.png").size == (SIZE, SIZE)
        assert Identity.load(drawn / "identity.safetensors").metadata["refined"] == "true"

    def test_bad_input_is_named_before_anything_loads(self, tiny_models, tmp_path, capsys, monkeypatch):
        import namespace.inference.identity_commands as commands

        monkeypatch.setattr(commands, "load_naming", lambda *a, **k: pytest.fail("a model loaded"))
        wide = tmp_path / "wide.safetensors"
        save_file({"name_embedding": torch.randn(8, 64)}, str(wide), metadata={"format": "magicnaming-identity",
                                                                              "format_version": "1"})  # fmt: skip
        (tmp_path / "empty").mkdir()
        taken = tmp_path / "taken.safetensors"
        taken.write_bytes(b"")
        args = ["identity", "refine", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
        args += ["--references", str(tmp_path / "empty"), "--identity", str(wide), "--output", str(taken)]
        assert main([*args, "--steps", "0", "--prior_weight", "-1"]) == 1
        err = capsys.readouterr().err
        for flag in ("--references", "--identity", "--output", "--steps", "--prior_weight"):
            assert says(err, flag), (flag, err)
        assert says(err, "--identity", "width 64") and says(err, "--output", "--overwrite")

    def test_a_diverging_refine_writes_no_file(self, tiny_models, references, tmp_path, capsys, monkeypatch):
        nan_forward(monkeypatch)
        output = tmp_path / "carol.safetensors"
        args = ["identity", "refine", "--encoder", str(tiny_models.encoder), "--pipeline", str(tiny_models.pipeline)]
        assert main([*args, "--references", str(references), "--output", str(output), "--steps", "3"]) == 1
        assert says(capsys.readouterr().err, "error", "diverged at step 1 of 3")
        assert not output.exists() and list(tmp_path.iterdir()) == []


def test_the_command_is_listed_with_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["identity", "refine", "--help"])
    text = capsys.readouterr().out
    for flag in ("--identity", "--references", "--steps", "--prior_weight", "--face_weight", "--overwrite"):
        assert flag in text
