"""What ``magicnaming evaluate`` draws: prompt suites, input checks, the methods side by side, resumable drawing.

On the tiny pipeline and tiny encoder of ``namespace.testing``, saved to folders as the command reads them, and
IP-Adapter with random weights (plumbing only).
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from namespace import Identity
from namespace.inference import MagicNaming
from namespace.inference.evaluation.config import EvaluationConfig, IPAdapterConfig, ReferenceConfig, SweepConfig
from namespace.inference.evaluation.drawing import draw_images, generation_options, plan_jobs
from namespace.inference.evaluation.fingerprints import encoder_sha256
from namespace.inference.evaluation.inputs import check_evaluation
from namespace.inference.evaluation.methods import (
    Person,
    Setting,
    build_methods,
    call_arguments,
    prepare_people,
    reference_fingerprint,
)
from namespace.inference.evaluation.suite import PAPER_TASKS, PromptSuite, SuitePrompt, default_suite, load_suite
from namespace.inference.generation_settings import GenerationSettings
from namespace.miniature.captions import caption
from namespace.model_names import load_encoder, load_pipeline
from namespace.testing import synthetic_face
from namespace.testing.ip_adapter import RANDOM_WEIGHT_NAME

SMALL = {"num_inference_steps": 2, "guidance_scale": 5.0, "height": None, "width": None}  # 32 × 32 images


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_models):
    """The tiny pipeline, an encoder, IP-Adapter weights (links to the session's ``tiny_models``), two people's photo
    folders and an empty folder."""
    root = tmp_path_factory.mktemp("evaluation")
    for name, saved in [("pipeline", tiny_models.pipeline), ("encoder", tiny_models.encoder),
                        ("ip-adapter", tiny_models.ip_adapter)]:  # fmt: skip
        (root / name).symlink_to(saved, target_is_directory=True)
    for person in (1, 2):
        (root / f"person{person}").mkdir()
        for v in range(2):
            synthetic_face(person, v, 64).save(root / f"person{person}" / f"{v}.png")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no photos here")
    return root


def config_for(folders, **changes) -> EvaluationConfig:
    people = [ReferenceConfig("alma", photos=str(folders / "person1"), name="Alma Quintrell"),
              ReferenceConfig("boris", photos=str(folders / "person2"))]  # fmt: skip
    ip_adapter = IPAdapterConfig(weights=str(folders / "ip-adapter"), weight_name=RANDOM_WEIGHT_NAME, scale=1.0)
    settings = dict(encoder=str(folders / "encoder"), pipeline=str(folders / "pipeline"), references=people,
                    suite="miniature", seeds=[0, 1], methods=["plain", "magicnaming", "ip_adapter"],
                    ip_adapter=ip_adapter, num_inference_steps=2, batch_size=3, check_faces=False,
                    device="cpu")  # fmt: skip
    return EvaluationConfig(**(settings | changes))


@pytest.fixture(scope="module")
def loaded(folders):
    """The pipeline, the plugin, the people (identities made) and every method, as ``evaluate`` loads them."""
    config = config_for(folders)
    checked = check_evaluation(config)
    naming = MagicNaming(load_pipeline(checked.pipeline, device="cpu"), load_encoder(config.encoder, "cpu"))
    people = prepare_people(checked.references, naming, check_faces=False)
    return config, checked, naming, people, build_methods(config, naming.pipe, naming)


class TestSuites:
    def test_sdxl_suite_has_the_papers_four_tasks(self):
        suite = default_suite("sdxl")
        assert tuple(suite.tasks) == PAPER_TASKS and [len(p) for p in suite.tasks.values()] == [5, 5, 5, 5]
        assert suite.tasks["action"][0].fill("Alma Quintrell") == "a photo of Alma Quintrell riding a horse"

    def test_miniature_suite_is_the_worlds_captions_without_actions(self):
        suite = default_suite("miniature")
        assert list(suite.tasks) == ["scene", "emotion", "style"] and len(suite) == 6
        beach = suite.tasks["scene"][0]
        assert beach == SuitePrompt("a photo of {person} on a beach", {"scene": "beach"})
        assert beach.fill("a person") == caption("a person", scene="beach")
        assert suite.tasks["style"][0].fill("Alma") == "a watercolor painting of Alma"

    def test_yaml_suite_and_its_errors(self, tmp_path):
        path = tmp_path / "suite.yaml"
        path.write_text("tasks:\n  scene:\n    - a photo of {person} on the moon\n"
                        "    - {text: '{person} in a forest', asks: {scene: forest}}\n")  # fmt: skip
        suite = load_suite(path)
        assert suite.tasks == {"scene": [SuitePrompt("a photo of {person} on the moon"),
                                         SuitePrompt("{person} in a forest", {"scene": "forest"})]}  # fmt: skip
        path.write_text("tasks: {}\n")
        with pytest.raises(ValueError, match=r"--suite: the prompt suite .* has no task"):
            load_suite(path)
        with pytest.raises(ValueError, match="task 'action' of the prompt suite 'mine' has no prompt"):
            PromptSuite("mine", {"scene": [SuitePrompt("{person} at home")], "action": []})
        with pytest.raises(ValueError, match=r"scene\[0\] .* expected one \{person\} placeholder"):
            PromptSuite("mine", {"scene": [SuitePrompt("a photo of Alma at home")]})
        with pytest.raises(ValueError, match="--suite: expected sdxl or miniature or a YAML file, got 'paper'"):
            check_evaluation(EvaluationConfig("encoder", "pipeline", suite="paper"))


class TestInputs:
    def test_good_config_reads_people_and_pipeline(self, folders):
        checked = check_evaluation(config_for(folders))
        assert [(r.label, r.name, len(r.photos)) for r in checked.references] == [
            ("alma", "Alma Quintrell", 2), ("boris", None, 2)]  # fmt: skip
        assert checked.pipeline == str(folders / "pipeline") and checked.world is None
        assert (checked.encoder.num_tokens, checked.encoder.width) == (8, 80)

    def test_a_miniature_world_names_its_pipeline(self, folders, tmp_path):
        (tmp_path / "world.json").write_text("{}")
        (tmp_path / "pipeline").symlink_to(folders / "pipeline", target_is_directory=True)
        checked = check_evaluation(config_for(folders, pipeline=str(tmp_path)))
        assert (checked.world, checked.pipeline) == (tmp_path, str(tmp_path / "pipeline"))
        (tmp_path / "pipeline").unlink()
        with pytest.raises(ValueError, match=r"--pipeline: .*pipeline' is not a folder"):
            check_evaluation(config_for(folders, pipeline=str(tmp_path)))  # a world without its pipeline

    def test_the_drawing_settings_and_what_is_written_beside_each_image(self, folders):
        config = config_for(folders, image_size=48, delta=1.5, eta=9.0)
        assert config.generation(7) == GenerationSettings(num_inference_steps=2, guidance_scale=5.0, height=48,
                                                          width=48, delta=1.5, eta=9.0, seed=7)  # fmt: skip
        # without a step window the images keep the settings (and so the reuse) they had before it existed
        assert generation_options(config) == {"num_inference_steps": 2, "guidance_scale": 5.0, "height": 48,
                                              "width": 48}  # fmt: skip
        windowed = dataclasses.replace(config, step_window=(0.0, 0.5))
        assert generation_options(windowed)["step_window"] == (0.0, 0.5)
        assert windowed.generation().step_window == (0.0, 0.5)
        with pytest.raises(ValueError, match=r"--step_window: expected 0 <= start < end <= 1, got \(0.5, 0.2\)"):
            check_evaluation(dataclasses.replace(config, step_window=(0.5, 0.2)))

    def test_one_generator_per_image_seeded_with_its_seed(self):
        options = {**SMALL, "step_window": (0.0, 0.5)}
        plain = call_arguments(options, [3, 5])
        assert set(plain) == {"num_inference_steps", "guidance_scale", "height", "width", "generator"}
        expected = [torch.randn(4, generator=torch.Generator().manual_seed(seed)) for seed in (3, 5)]
        drawn = [torch.randn(4, generator=generator) for generator in plain["generator"]]
        assert all(torch.equal(d, e) for d, e in zip(drawn, expected, strict=True))
        named = call_arguments(options, [3], Setting(1.5, 9.0))
        assert (named["delta"], named["eta"], named["step_window"]) == (1.5, 9.0, (0.0, 0.5))

    def test_every_bad_input_is_one_error_before_anything_loads(self, folders, tmp_path):
        (tmp_path / "empty.yaml").write_text("tasks:\n")
        Identity(torch.randn(8, 48), "narrow").save(tmp_path / "narrow.safetensors")  # another width than (8, 80)
        people = [ReferenceConfig("alma", photos=str(folders / "empty")),
                  ReferenceConfig("boris", identity=str(tmp_path / "narrow.safetensors"))]  # fmt: skip
        config = config_for(folders, suite=str(tmp_path / "empty.yaml"), references=people, seeds=[],
                            ip_adapter=IPAdapterConfig(), batch_size=0, sweep=SweepConfig(eta=[0.0]))  # fmt: skip
        with pytest.raises(ValueError) as error:
            check_evaluation(config)
        message = str(error.value)
        expected = [
            "--suite: the prompt suite", "has no task",
            "--seeds: expected at least one seed", "--batch_size: expected at least 1, got 0",
            "--sweep.eta[0]: expected a name norm η > 0, got 0.0",
            f"--references[0].photos: folder {str(folders / 'empty')!r} holds no image files",
            "--references[1].identity: ", "identity has width 48, expected 80",
            "--references[1]: IP-Adapter (in --methods) needs reference photos",
            "--ip_adapter.weights: --methods has ip_adapter, which needs its weights",
        ]  # fmt: skip
        assert message.startswith("8 problems:") and [part for part in expected if part not in message] == []

    def test_pipeline_without_the_methods_requirements(self, folders, tmp_path):
        from namespace.testing import tiny_sd15_pipeline

        tiny_sd15_pipeline().save_pretrained(tmp_path / "sd15")
        with pytest.raises(ValueError, match=r"--pipeline: magicnaming needs an SDXL-family pipeline .* without "
                                             "tokenizer_2, text_encoder_2"):  # fmt: skip
            check_evaluation(config_for(folders, pipeline=str(tmp_path / "sd15"), methods=["magicnaming"]))
        ip_adapter = IPAdapterConfig(weights=str(folders / "ip-adapter"), weight_name="missing.safetensors")
        with pytest.raises(ValueError, match=r"--ip_adapter.weights: .*missing.safetensors' does not exist"):
            check_evaluation(config_for(folders, ip_adapter=ip_adapter))
        with pytest.raises(ValueError, match="--seeds: expected distinct seeds"):
            check_evaluation(config_for(folders, seeds=[3, 3]))
        with pytest.raises(ValueError, match="--sweep: sweeps MagicNaming's δ and η, but --methods has no magicnaming"):
            check_evaluation(config_for(folders, methods=["plain"], sweep=SweepConfig(delta=[1.0, 2.0])))


class TestMethods:
    @pytest.mark.slow
    def test_same_seeds_across_methods(self, loaded):
        _, _, naming, people, methods = loaded
        plain, magicnaming, ip_adapter = methods
        alma = people[0]
        prompts, seeds = ["a photo of a person"] * 2, [0, 1]
        setting = magicnaming.settings()[0]
        first = [np.asarray(i, dtype=float) for i in plain.draw(prompts, alma, Setting(), seeds, SMALL)]
        again = [np.asarray(i, dtype=float) for i in plain.draw(prompts, alma, Setting(), seeds, SMALL)]
        named = [np.asarray(i, dtype=float) for i in magicnaming.draw(prompts, alma, setting, seeds, SMALL)]
        assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
        assert not np.array_equal(first[0], first[1])  # another seed, another image
        assert (
            np.abs(named[0] - first[0]).mean() > 0.1
        )  # the prepended name changes the image (random weights: a little)
        # the plugin at this setting is the plugin called by hand with the same seed
        by_hand = naming(prompts[0], alma.identity, delta=setting.delta, eta=setting.eta, num_inference_steps=2,
                         guidance_scale=5.0, generator=torch.Generator().manual_seed(1)).images[0]  # fmt: skip
        assert np.array_equal(np.asarray(by_hand, dtype=float), named[1])
        ip_adapter.open()
        try:
            adapted = [np.asarray(i, dtype=float) for i in ip_adapter.draw(prompts, alma, Setting(), seeds, SMALL)]
        finally:
            ip_adapter.close()
        assert np.abs(adapted[0] - first[0]).mean() > 0.1
        after = np.asarray(plain.draw(prompts[:1], alma, Setting(), [0], SMALL)[0], dtype=float)
        assert np.array_equal(after, first[0])  # unloaded: the pipeline draws as before

    def test_who_each_method_names_and_settings(self, loaded):
        _, _, naming, people, (plain, magicnaming, ip_adapter) = loaded
        assert [plain.subject(p) for p in people] == ["Alma Quintrell", "a person"]
        assert magicnaming.subject(people[0]) == ip_adapter.subject(people[0]) == "a person"
        statistics = naming.encoder.statistics
        assert magicnaming.settings() == [Setting(statistics.delta, statistics.norm, True)]
        delta, eta = statistics.delta, statistics.norm
        magicnaming.sweep = SweepConfig(delta=[delta + 1, delta], eta=[5.0, eta])  # the default once, marked
        try:
            assert magicnaming.settings() == [Setting(delta, eta, True), Setting(delta + 1, 5.0, False),
                                              Setting(delta + 1, eta, False), Setting(delta, 5.0, False)]  # fmt: skip
        finally:
            magicnaming.sweep = SweepConfig()


def _small_suite():
    return PromptSuite("two", {"scene": [SuitePrompt("a photo of {person} on a beach")],
                               "emotion": [SuitePrompt("a photo of {person} smiling")]})  # fmt: skip


class TestDrawing:
    @pytest.mark.slow
    def test_resume_after_a_kill_redraws_nothing_finished(self, loaded, tmp_path):
        config, _, _, people, methods = loaded
        plain, magicnaming = methods[:2]
        jobs = plan_jobs([plain, magicnaming], _small_suite(), people, [0, 1])
        assert len(jobs) == 2 * 2 * 2 * 2  # methods × people × prompts × seeds
        assert (jobs[0].method, jobs[0].person, jobs[0].task, jobs[0].seed) == ("plain", "alma", "scene", 0)
        options = generation_options(dataclasses.replace(config, num_inference_steps=2))
        common = {"pipeline": config.pipeline}

        class Killed(Exception):
            pass

        written = []

        def kill_after_five(image):
            written.append(image)
            if len(written) == 5:  # batches of 3, 1, 3, ...: the third is cut short after its first image
                raise Killed

        killed = tmp_path / "killed"
        with pytest.raises(Killed):
            draw_images(jobs, [plain, magicnaming], people, killed, options, 3, common, on_image=kill_after_five)
        done = sorted(killed.rglob("*.png"))
        assert len(done) == 5 and len(list(killed.rglob("*.json"))) == 5
        stamps = {path: path.stat().st_mtime_ns for path in done}
        resumed = draw_images(jobs, [plain, magicnaming], people, killed, options, 3, common)
        assert [image.drawn for image in resumed].count(False) == 5
        assert {image.path for image in resumed if not image.drawn} == set(done)
        assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())  # not rewritten
        whole = draw_images(jobs, [plain, magicnaming], people, tmp_path / "whole", options, 3, common)
        assert all(image.drawn for image in whole)
        for a, b in zip(resumed, whole, strict=True):
            assert a.path.relative_to(killed) == b.path.relative_to(tmp_path / "whole")
            assert Image.open(a.path).tobytes() == Image.open(b.path).tobytes(), a.path
            assert json.loads(a.path.with_suffix(".json").read_text()) == json.loads(
                b.path.with_suffix(".json").read_text())  # fmt: skip
        # a third run draws nothing; a changed setting redraws
        again = draw_images(jobs, [plain, magicnaming], people, killed, options, 3, common)
        assert not any(image.drawn for image in again)
        changed = draw_images(jobs[:2], [plain], people, killed, options | {"guidance_scale": 2.0}, 3, common)
        assert all(image.drawn for image in changed)

    def test_settings_beside_each_image(self, loaded, tmp_path):
        _, _, _, people, methods = loaded
        jobs = plan_jobs(methods[:1], _small_suite(), people[:1], [7])
        (image,) = draw_images(jobs[1:], methods[:1], people, tmp_path, SMALL, 4, {"pipeline": "tiny"})
        assert image.path == tmp_path / "plain/default/emotion/alma/00-seed7.png"
        record = json.loads(image.path.with_suffix(".json").read_text())
        assert record["settings"] == image.settings
        assert record["settings"] | {"pipeline": "tiny"} == {
            "method": "plain", "setting": {"delta": None, "eta": None, "default": True}, "person": "alma",
            "name": "Alma Quintrell", "task": "emotion", "prompt_index": 0, "prompt": "a photo of {person} smiling",
            "text": "a photo of Alma Quintrell smiling", "asks": {}, "seed": 7, **SMALL,
            "pipeline": "tiny"}  # fmt: skip
        assert Image.open(image.path).size == (32, 32)

    def test_every_method_in_one_run(self, loaded, tmp_path):
        _, _, naming, people, methods = loaded
        jobs = plan_jobs(methods, _small_suite(), people[1:], [0])
        drawn = draw_images(jobs, methods, people, tmp_path, SMALL, 4, {"pipeline": "tiny"})
        assert [(image.settings["method"], image.settings["text"]) for image in drawn] == [
            ("plain", "a photo of a person on a beach"), ("plain", "a photo of a person smiling"),
            ("magicnaming", "a photo of a person on a beach"), ("magicnaming", "a photo of a person smiling"),
            ("ip_adapter", "a photo of a person on a beach"), ("ip_adapter", "a photo of a person smiling"),
        ]  # fmt: skip
        assert drawn[4].settings["ip_adapter"]["weight_name"] == RANDOM_WEIGHT_NAME
        assert drawn[2].settings["encoder"] == loaded[0].encoder and "encoder" not in drawn[0].settings
        pixels = [np.asarray(Image.open(image.path), dtype=float) for image in drawn]
        assert min(np.abs(pixels[0] - pixels[k]).mean() for k in (2, 4)) > 0.1  # same seed, other method
        assert naming.pipe.unet.encoder_hid_proj is None  # IP-Adapter unloaded after its batches

    def test_other_photos_in_the_same_folder_redraw_the_methods_that_use_them(self, loaded, tmp_path):
        _, checked, naming, people, methods = loaded
        plain, magicnaming = methods[:2]
        folder = tmp_path / "alma"
        folder.mkdir()
        for v in range(2):
            synthetic_face(3, v, 64).save(folder / f"{v}.png")  # another person's photos, under alma's label
        alma = dataclasses.replace(checked.references[0], photos=sorted(folder.iterdir()))
        (other,) = prepare_people([alma], naming, check_faces=False)
        assert other.references_sha256 != people[0].references_sha256
        jobs = plan_jobs([plain, magicnaming], _small_suite(), people[:1], [0])
        draw_images(jobs, [plain, magicnaming], people, tmp_path / "images", SMALL, 4, {"pipeline": "tiny"})
        again = draw_images(jobs, [plain, magicnaming], [other], tmp_path / "images", SMALL, 4, {"pipeline": "tiny"})
        assert [(image.settings["method"], image.drawn) for image in again] == [
            ("plain", False), ("plain", False), ("magicnaming", True), ("magicnaming", True)]  # fmt: skip
        assert again[2].settings["encoder_sha256"] == encoder_sha256(naming.encoder)

    def test_an_identity_file_person_is_keyed_by_its_embedding(self):
        identity = Identity(torch.ones(8, 80), "x")
        first, moved = reference_fingerprint([], identity), reference_fingerprint([], Identity(torch.ones(8, 80) * 2))
        assert first == reference_fingerprint([], Identity(torch.ones(8, 80), "renamed")) and first != moved


def test_person_without_identity_is_refused_by_magicnaming(loaded):
    magicnaming = loaded[4][1]
    with pytest.raises(ValueError, match="person 'x' has no identity"):
        magicnaming.draw(["a person"], Person("x", None, [], None), magicnaming.settings()[0], [0], SMALL)
