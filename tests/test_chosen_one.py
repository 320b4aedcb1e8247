"""The Chosen One without training: ``identity_from_text(..., rounds=...)`` (round 1 is today's identity exactly;
later rounds draw with the current name prepended, stop when the agreement stops rising, return the best round's
identity and record every round) and the likeness figure that compares round 1 with the final round."""

import inspect
import io

import numpy as np
import pytest
import torch

from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.inference import text_identity as text
from namespace.inference.generation_settings import GenerationSettings
from namespace.inference.likeness_chosen_one import NEW_SEEDS, chosen_one_figures, mean_pairwise_cosine
from namespace.inference.likeness_metrics import Drawing
from namespace.inference.text_identity import (
    NOT_RISING,
    ROUND_LIMIT,
    Cluster,
    identity_from_text,
    most_consistent_cluster,
    round_seed,
    text_identity_rounds,
)
from namespace.progress import Steps

SMALL = {"num_inference_steps": 1, "height": 32, "width": 32}
RED_HAIR = "a woman with red hair"
TODAY_KEYS = ["description", "num_candidates", "cluster_size", "cohesion", "agreement", "seed"]


@pytest.fixture
def naming(tiny_pipe, tiny_encoder):
    return MagicNaming(tiny_pipe, tiny_encoder)


def todays_identity_by_hand(naming, description, candidates, clusters, seed, batch_size=4):
    """identity_from_text as it was before rounds, written out: the pipeline's candidates, named, clustered."""
    generator, images = torch.Generator().manual_seed(seed), []
    for start in range(0, candidates, batch_size):
        count = min(batch_size, candidates - start)
        images += naming.pipe(prompt=description, num_images_per_prompt=count, generator=generator, **SMALL).images
    names = naming.encoder.encode(images).cpu()
    cluster = most_consistent_cluster(names, naming.encoder.statistics.mean.cpu(), clusters, 2, seed)
    return names[cluster.members].mean(0), cluster


class TestRounds:
    def test_one_round_is_todays_identity_exactly(self, naming):
        assert inspect.signature(identity_from_text).parameters["rounds"].default == 1
        expected, cluster = todays_identity_by_hand(naming, RED_HAIR, 6, 2, seed=3)
        one = identity_from_text(naming, RED_HAIR, num_candidates=6, num_clusters=2, seed=3, rounds=1, **SMALL)
        assert torch.equal(one.embedding, expected)
        assert list(one.metadata) == TODAY_KEYS  # no round keys: the file is today's, byte for byte
        assert one.metadata["cluster_size"] == str(cluster.size)
        assert one.metadata["agreement"] == f"{cluster.agreement:.4f}"
        two = text_identity_rounds(naming, RED_HAIR, 6, 2, seed=3, rounds=2, **SMALL)
        assert torch.equal(two.rounds[0].identity.embedding, expected)  # round 1 of a longer run is the same
        assert two.rounds[0].identity.metadata == one.metadata

    def test_three_rounds_record_every_rounds_agreement(self, naming):
        made = text_identity_rounds(naming, RED_HAIR, 6, 2, rounds=3, **SMALL)
        identity = made.identity()  # what identity_from_text returns
        meta = identity.metadata
        run = int(meta["rounds_run"])
        agreements = [float(value) for value in meta["round_agreements"].split(",")]
        assert meta["rounds"] == "3" and 2 <= run <= 3 and len(agreements) == run == len(made.rounds)
        assert len(meta["round_cluster_sizes"].split(",")) == len(meta["round_cohesions"].split(",")) == run
        assert agreements == pytest.approx([r.cluster.agreement for r in made.rounds], abs=1e-4)
        best = int(meta["best_round"])
        assert meta["agreement"] == f"{made.rounds[best - 1].cluster.agreement:.4f}"
        assert torch.equal(identity.embedding, made.rounds[best - 1].identity.embedding)
        if run < 3:  # stopped early: the last round did not rise
            assert meta["stopped"] == NOT_RISING and agreements[-1] <= agreements[-2] + 1e-4
        else:
            assert meta["stopped"] in (ROUND_LIMIT, NOT_RISING)

    @pytest.mark.parametrize(
        ("cohesions", "rounds", "run", "best", "stopped"),
        [
            ([0.1, 0.2, 0.3], 3, 3, 3, ROUND_LIMIT),  # rising to the limit: the last round is the best
            ([0.3, 0.2, 0.9], 3, 2, 1, NOT_RISING),  # fell in round 2: stop, keep round 1
            ([0.1, 0.3, 0.3, 0.9], 4, 3, 2, NOT_RISING),  # flat in round 3: not rising, keep round 2
        ],
    )
    def test_the_rounds_stop_when_the_agreement_stops_rising(self, naming, monkeypatch, cohesions, rounds, run,
                                                            best, stopped):  # fmt: skip
        script = iter(cohesions)
        monkeypatch.setattr(text, "most_consistent_cluster", lambda *a: Cluster(torch.tensor([0, 1]), next(script)))
        made = text_identity_rounds(naming, RED_HAIR, 4, 2, rounds=rounds, **SMALL)
        identity = made.identity()
        assert (len(made.rounds), made.best + 1, made.stopped) == (run, best, stopped)
        meta = identity.metadata
        assert (meta["rounds_run"], meta["best_round"], meta["stopped"]) == (str(run), str(best), stopped)
        assert meta["round_agreements"] == ",".join(f"{2 * c:.4f}" for c in cohesions[:run])  # n·(n − 1)·ρ, n = 2
        assert meta["round_cluster_sizes"] == ",".join(["2"] * run)
        assert torch.equal(identity.embedding, made.rounds[best - 1].identity.embedding)
        assert not torch.equal(made.rounds[0].identity.embedding, made.rounds[1].identity.embedding)  # new draws

    def test_later_rounds_draw_with_the_current_name_prepended(self, naming, monkeypatch):
        calls, plugin_call = [], MagicNaming.__call__

        def recording(self, prompt, identity=None, **keywords):
            state = keywords["generator"].get_state()
            calls.append((prompt, identity, torch.randn(4, generator=torch.Generator().set_state(state))))
            return plugin_call(self, prompt, identity, **keywords)

        monkeypatch.setattr(MagicNaming, "__call__", recording)
        made = text_identity_rounds(naming, RED_HAIR, 6, 2, seed=7, batch_size=4, rounds=2, **SMALL)
        assert len(made.rounds) == 2 and len(calls) == 2  # round 1 calls the pipeline itself; round 2: 4 + 2
        assert all(prompt == RED_HAIR for prompt, _, _ in calls)
        assert all(torch.equal(person.embedding, made.rounds[0].identity.embedding) for _, person, _ in calls)
        first_noise = torch.randn(4, generator=torch.Generator().manual_seed(round_seed(7, 2)))
        assert torch.equal(calls[0][2], first_noise)

    def test_each_rounds_seed_comes_from_the_seed_and_the_round(self, naming):
        assert round_seed(7, 1) == 7 and round_seed(0, 2) not in (0, 1, 2)
        assert round_seed(2**64 - 1, 3) < 2**64 and round_seed(0, 2) != round_seed(1, 2)
        first = identity_from_text(naming, RED_HAIR, num_candidates=4, num_clusters=2, seed=1, rounds=2, **SMALL)
        again = identity_from_text(naming, RED_HAIR, num_candidates=4, num_clusters=2, seed=1, rounds=2, **SMALL)
        assert torch.equal(first.embedding, again.embedding) and first.metadata == again.metadata

    @pytest.mark.parametrize("rounds", [0, -2, 1.5, True, "3"])
    def test_bad_rounds_are_refused_before_anything_is_drawn(self, rounds):
        with pytest.raises(ValueError, match=r"rounds: expected an integer of at least 1 .*got"):
            identity_from_text(object(), RED_HAIR, rounds=rounds)  # the plugin is never touched

    def test_the_command_refuses_bad_rounds_with_the_other_problems(self, tiny_models, tmp_path, capsys):
        output = tmp_path / "character.safetensors"
        argv = ["identity", "from_text", "--encoder", str(tiny_models.encoder), "--description", "a tall man",
                "--pipeline", str(tmp_path / "no-pipeline"), "--output", str(output), "--rounds", "0"]  # fmt: skip
        assert main(argv) == 1
        error = capsys.readouterr().err
        assert "--rounds: expected an integer of at least 1" in error and "got 0" in error
        assert "--pipeline" in error and not output.exists()


class PixelJudge:
    """Stands in for the world's judge: an image's embedding is its centred pixels."""

    def embed(self, images) -> torch.Tensor:
        pixels = torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)).flatten() for image in images])
        return torch.nn.functional.normalize(pixels - 127.5, dim=1)


PROMPTS = ["a photo of a person", "a photo of a person on a beach", "a watercolor painting of a person"]


def pixel_drawing(naming, tmp_path, seeds=2) -> Drawing:
    judging = type("Judging", (), {"judge": PixelJudge()})()
    settings = GenerationSettings(seed=5, **SMALL)
    return Drawing(naming, judging, tmp_path, settings, seeds, PROMPTS, [None] * len(PROMPTS))


class TestChosenOneFigure:
    def test_consistency_is_the_mean_cosine_of_the_pairs(self):
        rows = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])  # cosines 1, 0, 0 (rows renormalised)
        assert mean_pairwise_cosine(rows) == pytest.approx(1 / 3)
        assert mean_pairwise_cosine(torch.tensor([[1.0, 1.0], [1.0, -1.0]])) == pytest.approx(0.0)
        with pytest.raises(ValueError, match="at least 2 rows"):
            mean_pairwise_cosine(torch.ones(1, 4))

    def test_round_one_and_the_final_identity_are_judged_on_new_seeds(self, naming, tmp_path):
        drawing, stream = pixel_drawing(naming, tmp_path), io.StringIO()
        steps = Steps(2, stream=stream)
        details, figures = chosen_one_figures(drawing, [RED_HAIR], rounds=2, candidates=4, steps=steps)
        assert stream.getvalue().count("[1/2] the Chosen One") == 1
        assert set(figures) == {"chosen_one_consistency_round1", "chosen_one_consistency_final"}
        detail = details[RED_HAIR]
        assert len(detail["round_agreements"]) == len(detail["round_cluster_sizes"]) == 2  # rounds=2 runs both
        assert detail["final_round"] in (1, 2) and detail["stopped"] in (ROUND_LIMIT, NOT_RISING)
        # round 1 by hand: the identity a single round makes with the drawing's settings, each prompt of seed s from
        # the noise of settings.seed + NEW_SEEDS + s·P + p
        first = identity_from_text(naming, RED_HAIR, num_candidates=4, num_clusters=3, seed=5, guidance_scale=5.0,
                                   **SMALL)  # fmt: skip
        expected = []
        for s in range(2):
            generators = [torch.Generator().manual_seed(5 + NEW_SEEDS + s * 3 + p) for p in range(3)]
            images = naming(PROMPTS, [first] * 3, generator=generators, guidance_scale=5.0, **SMALL).images
            expected.append(mean_pairwise_cosine(PixelJudge().embed(images)))
        round1 = figures["chosen_one_consistency_round1"]
        assert round1["per_seed"] == pytest.approx(expected, abs=1e-6) and round1["seeds"] == 2
        assert round1["mean"] == pytest.approx(sum(expected) / 2, abs=1e-6)
        assert detail["consistency_round1"] == pytest.approx(round1["mean"], abs=1e-9)
        final = figures["chosen_one_consistency_final"]
        assert final["seeds"] == 2 and detail["consistency_final"] == pytest.approx(final["mean"], abs=1e-9)
        if detail["final_round"] == 1:
            assert final["per_seed"] == round1["per_seed"]
        else:
            assert (tmp_path / "chosen-a-woman-with-red-hair-final-0.png").exists()
        assert (tmp_path / "chosen-a-woman-with-red-hair-round1-2.png").exists()  # seed 0's images, one per prompt

    def test_bad_arguments_are_refused_together_before_anything_is_drawn(self, tmp_path):
        class NoDrawing:
            def __call__(self, *args, **kwargs):
                raise AssertionError("drew an image")

        drawing = Drawing(NoDrawing(), None, tmp_path, GenerationSettings(), 1, PROMPTS[:1], [None])
        with pytest.raises(ValueError) as error:
            chosen_one_figures(drawing, [], rounds=0, candidates=2, steps=Steps(1, stream=io.StringIO()))
        message = str(error.value)
        for argument in ("descriptions:", "rounds:", "candidates:", "drawing.prompts:"):
            assert argument in message
