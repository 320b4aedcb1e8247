"""``magicnaming likeness``: does the method work on the miniature world? The demo's headline figures.

On a miniature world (``magicnaming miniature build``) and an encoder trained on a LaionCele built with it, every
figure is judged by the world's identity judge (not the encoder) and its attribute detectors:
- ``mini_model_name_accuracy``: "a photo of NAME" images the judge assigns to NAME, over the famous people;
- ``likeness_heldout``: images made from held-out photos of train people (identity from photos → prepended name)
  that the judge assigns to that person, over the prompts of every task; ``likeness_plain``: the same prompts and
  seeds without a name; ``likeness_chance``: 1 / the people the judge chooses from (the famous people);
- ``likeness_unseen`` / ``likeness_unseen_baseline``: mean judge cosine between the reference photos of people the
  encoder never saw and images made with their predicted identity / with a sampled identity;
- ``prompt_followed_magicnaming`` / ``prompt_followed_plain``: task prompts whose attribute the detector finds, with
  and without a prepended name;
- ``interpolation_monotonic``: interpolation paths along which the judge's similarity to A falls and to B rises
  (beyond the noise over seeds); ``interpolation_rank_correlation``: Spearman's correlation of the step with the
  similarity to B minus that to A, per path and seed (1: every step moves towards B).

Every figure is measured on each seed's images alone and reported as the mean over seeds, with its spread under
``spread`` (``namespace.seed_spread``: standard deviation, min, max and the per-seed values; for the interpolation
paths, judged on all seeds together, the leave-one-seed-out jackknife's standard error).

Memory: the pipeline, the encoder, the judges, and one person's images at a time (PNG files are written as made).
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import torch
from PIL import Image

from namespace.files import atomic_write, output_problems, slug
from namespace.laioncele import validation_samples
from namespace.miniature.captions import PERSON, caption, task_prompts
from namespace.progress import Steps
from namespace.seed_spread import jackknife, over_seeds
from namespace.synthetic.faces import synthetic_face
from namespace.synthetic.people import cast_names

from .evaluation.scorers import attributes_followed

BASE_PROMPT = caption(PERSON)  # "a photo of a person"
GALLERY_PHOTOS = 8  # enrolment photos per famous person: the embedded sample's own photos (variants 0…7)
GALLERY_SIZE = 96  # the embedded sample's photo size
NOISE_MARGIN = 2.0  # a step counts as rising (or falling) only beyond twice its standard error over the seeds


def _reference_photos(laioncele: Path) -> dict[str, tuple[str, list[Image.Image]]]:
    """name → (``train`` or ``unseen``, photos): held-out photos of train people, photos of validation people."""
    people: dict[str, tuple[str, list[Image.Image]]] = {}
    for sample in validation_samples(laioncele):
        kind = {"heldout": "train", "val": "unseen"}.get(sample["split"])
        if kind:
            photos = people.setdefault(sample["name"], (kind, []))[1]
            photos.append(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))
    return people


class Judging:
    """The world's judge and detectors, with the famous people enrolled from their photos."""

    def __init__(self, world: Path, famous: list[str], cast_seed: int) -> None:
        from namespace.miniature import AttributeDetector, IdentityJudge

        self.judge, self.detector = IdentityJudge.load(world / "judge"), AttributeDetector.load(world / "detectors")
        names = cast_names(cast_seed)
        gallery = {
            name: [synthetic_face(names.index(name), v, GALLERY_SIZE) for v in range(GALLERY_PHOTOS)] for name in famous
        }
        self.enrolled = self.judge.enroll(gallery)
        self.centroids = dict(zip(self.enrolled.labels, self.enrolled.embeddings, strict=True))  # name → (dim,)

    def right(self, images: list[Image.Image], name: str) -> list[bool]:
        return [label == name for label in self.judge.assign(images, self.enrolled)]

    def similarity(self, images: list[Image.Image], reference: torch.Tensor) -> torch.Tensor:
        """(n,) cosines between the images and a reference embedding (renormalised)."""
        return self.judge.embed(images) @ torch.nn.functional.normalize(reference, dim=0)


def _trend(similarities: torch.Tensor, sign: int) -> tuple[torch.Tensor, bool]:
    """(seeds, T) similarities along a path → their mean over seeds, and whether it rises (``sign`` 1) or falls
    (−1) with t: it ends beyond its start, and no step goes the other way by more than ``NOISE_MARGIN`` standard
    errors of that step's difference (one seed: any step against the trend fails)."""
    mean = similarities.mean(0)  # (T,)
    seeds = similarities.shape[0]
    error = similarities.diff(dim=1).std(0) / seeds**0.5 if seeds > 1 else torch.zeros(mean.numel() - 1)  # (T-1,)
    against = (-sign * mean.diff()) > NOISE_MARGIN * error
    return mean, bool(sign * (mean[-1] - mean[0]) > 0 and not against.any())


def _monotonic(to_a: torch.Tensor, to_b: torch.Tensor) -> bool:
    """(seeds, T) judge cosines to A and to B along one path → whether A's falls and B's rises (beyond the noise)."""
    return _trend(to_a, -1)[1] and _trend(to_b, 1)[1]


def _rank_correlation(values: torch.Tensor) -> float:
    """Spearman's correlation between the step index and (T,) ``values`` (1: rising at every step)."""
    ranks = values.argsort().argsort().double()
    steps = torch.arange(values.numel(), dtype=torch.float64)
    return float(torch.corrcoef(torch.stack([steps, ranks]))[0, 1])


def _share(marks: list[bool]) -> float:
    return sum(marks) / len(marks) if marks else float("nan")


def likeness(
    world: Path,
    encoder: Path,
    laioncele: Path,
    output: Path,
    probe_names: list[str] | None = None,
    seeds: int = 4,
    num_inference_steps: int = 20,
    guidance_scale: float = 2.0,
    interpolation_steps: int = 5,
    interpolation_pairs: int = 28,
    interpolation_seeds: int = 6,
    device: str = "auto",
    overwrite: bool = False,
) -> dict:
    """Measures the method on a miniature world; writes ``likeness.json`` and the images into ``output``.

    Args:
        world: a miniature world folder (``magicnaming miniature build`` prints it).
        encoder: a name-encoder folder trained on ``laioncele``.
        laioncele: the LaionCele directory the encoder was trained on (its held-out and validation photos are the
            references).
        output: folder for ``likeness.json`` and the images.
        probe_names: names to draw one "a photo of NAME" example of each (the demo's probe figure).
        seeds: images per prompt and person.
        num_inference_steps: denoising steps per image.
        guidance_scale: classifier-free guidance scale.
        interpolation_steps: identities on each path (both ends included).
        interpolation_pairs: most pairs of train people interpolated (every pair, in order: 1st and 2nd, 1st and 3rd…).
        interpolation_seeds: images per identity on a path; the judge's similarities are averaged over them.
        device: where the pipeline and encoder run.
        overwrite: write into a non-empty ``output`` (otherwise it is refused); its old likeness.json is removed
            before the first image is drawn, so a killed run leaves no likeness.json beside new images.
    """
    from .loading import load_naming

    world, encoder, laioncele, output = Path(world), Path(encoder), Path(laioncele), Path(output)
    problems = [f"{arg}: expected at least {low}, got {value}" for arg, value, low in
                (("seeds", seeds, 1), ("num_inference_steps", num_inference_steps, 1),
                 ("interpolation_steps", interpolation_steps, 2), ("interpolation_pairs", interpolation_pairs, 0),
                 ("interpolation_seeds", interpolation_seeds, 1))
                if value < low]  # fmt: skip
    if not (world / "world.json").is_file():
        problems.append(f"world: expected a miniature world folder (with world.json), got {world}")
    if not (laioncele / "manifest.json").is_file():
        problems.append(f"laioncele: expected a LaionCele directory (with manifest.json), got {laioncele}")
    problems += output_problems(output, "--output", overwrite, folder=True)
    if problems:
        raise ValueError("\n".join(problems))
    settings = json.loads((world / "world.json").read_text())
    famous, size = settings["famous"], settings["config"]["image_size"]
    references = _reference_photos(laioncele)
    train = [name for name, (kind, _) in references.items() if kind == "train" and name in famous]
    unseen = [name for name, (kind, _) in references.items() if kind == "unseen"]
    if not train:
        raise ValueError(f"laioncele: no held-out photos of a famous person of the world in {laioncele}")
    steps = Steps(total=9)
    naming = load_naming(str(encoder), str(world / "pipeline"), steps, device=device)
    steps.start("loading the identity judge and the attribute detectors")
    judging = Judging(world, famous, settings["config"]["cast_seed"])
    output.mkdir(parents=True, exist_ok=True)
    (output / "likeness.json").unlink(missing_ok=True)  # written last (atomically): the folder loads once finished
    tasks = task_prompts()
    prompts = [BASE_PROMPT] + [prompt for prompt, _ in tasks.values()]
    wanted = [None] + [attribute for _, attribute in tasks.values()]

    def draw(prompt_list: list[str], identity=None, seed: int = 0) -> list[Image.Image]:
        generator = [torch.Generator().manual_seed(seed) for _ in prompt_list]
        result = naming(prompt_list, identity, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                        height=size, width=size, generator=generator)  # fmt: skip
        return result.images

    def followed(images: list[Image.Image], asked: list[dict | None]) -> list[bool]:
        return [f for f in attributes_followed(judging.detector, images, asked) if f is not None]

    results: dict = {"settings": {"seeds": seeds, "num_inference_steps": num_inference_steps}}
    results["settings"] |= {"guidance_scale": guidance_scale, "prompts": prompts, "famous": famous}

    steps.start(f"the tiny SDXL alone: 'a photo of NAME' for {len(famous)} famous people × {seeds} seeds")
    name_right = []  # [seed][famous person]
    for seed in range(seeds):
        images = draw([caption(name) for name in famous], seed=seed)
        name_right.append([r for name, image in zip(famous, images, strict=True) for r in judging.right([image], name)])
    spreads = {"mini_model_name_accuracy": over_seeds([_share(marks) for marks in name_right])}
    if probe_names:
        (output / "probe").mkdir(exist_ok=True)
        for name, image in zip(probe_names, draw([caption(name) for name in probe_names]), strict=True):
            image.save(output / "probe" / f"{slug(name)}.png")

    # as many plain images as named ones: seed s of the figures gathers the plain seeds s, s + seeds, s + 2·seeds…
    steps.start(f"plain pipeline: {len(prompts)} prompts × {seeds * len(train)} seeds, no name")
    plain = [draw(prompts, seed=seed) for seed in range(seeds * len(train))]  # [seed][prompt]
    for index, image in enumerate(plain[0]):
        image.save(output / f"plain-{index}.png")
    plain_follow = [followed(images, wanted) for images in plain]
    spreads["prompt_followed_plain"] = over_seeds(
        [_share([f for marks in plain_follow[seed::seeds] for f in marks]) for seed in range(seeds)]
    )

    steps.start(f"held-out photos of {len(train)} train people → identities → {len(prompts)} prompts × {seeds} seeds")
    likeness_right, plain_right, follow = ([[] for _ in range(seeds)] for _ in range(3))  # [seed][image]
    identities, people = {}, {}
    for name in train:
        identities[name] = naming.identity(references[name][1], label=name, check_faces=False)
        person = {"right": 0, "images": 0}
        for seed in range(seeds):
            images = draw(prompts, [identities[name]] * len(prompts), seed)
            marks = judging.right(images, name)
            likeness_right[seed] += marks
            plain_right[seed] += judging.right(plain[seed], name)
            follow[seed] += followed(images, wanted)
            person["right"] += sum(marks)
            person["images"] += len(marks)
            if seed == 0:
                for index, image in enumerate(images):
                    image.save(output / f"{slug(name)}-{index}.png")
        references[name][1][0].save(output / f"{slug(name)}-reference.png")
        people[name] = person
    spreads["likeness_heldout"] = over_seeds([_share(marks) for marks in likeness_right])
    spreads["likeness_plain"] = over_seeds([_share(marks) for marks in plain_right])
    spreads["prompt_followed_magicnaming"] = over_seeds([_share(marks) for marks in follow])
    results |= {"likeness_chance": 1 / len(famous), "train_people": people}

    steps.start(f"{len(unseen)} people the encoder never saw: predicted against sampled identities")
    predicted, baseline, unseen_people = [[] for _ in range(seeds)], [[] for _ in range(seeds)], {}
    for name in unseen:
        reference = judging.judge.embed(references[name][1]).mean(0)
        identity = naming.identity(references[name][1], label=name, check_faces=False)
        mine, theirs = [], []
        for seed in range(seeds):
            sampled = naming.sample(1, seed=seed)[0]
            mine.append(judging.similarity(draw(prompts, [identity] * len(prompts), seed), reference).tolist())
            theirs.append(judging.similarity(draw(prompts, [sampled] * len(prompts), seed), reference).tolist())
            predicted[seed] += mine[-1]
            baseline[seed] += theirs[-1]
        mine, theirs = torch.tensor(mine), torch.tensor(theirs)  # (seeds, prompts)
        unseen_people[name] = {"predicted": float(mine.mean()), "sampled": float(theirs.mean())}
    if unseen:
        spreads["likeness_unseen"] = over_seeds([sum(values) / len(values) for values in predicted])
        spreads["likeness_unseen_baseline"] = over_seeds([sum(values) / len(values) for values in baseline])
        results["unseen_people"] = unseen_people

    pairs = list(itertools.combinations(train, 2))[:interpolation_pairs]
    steps.start(f"interpolating {len(pairs)} pairs of train people, {interpolation_steps} identities per path")
    paths, similarities = [], []  # per path: (seeds, T) judge cosines to A and to B
    ts = [i / (interpolation_steps - 1) for i in range(interpolation_steps)]
    for a, b in pairs:
        path = [naming.interpolate(identities[a], identities[b], t) for t in ts]
        to_a, to_b = [], []  # per seed: (len(ts),) judge cosines to A's and B's enrolled photos
        for seed in range(interpolation_seeds):
            images = draw([BASE_PROMPT] * len(ts), path, seed)
            to_a.append(judging.similarity(images, judging.centroids[a]))
            to_b.append(judging.similarity(images, judging.centroids[b]))
            if seed == 0:
                for index, image in enumerate(images):
                    image.save(output / f"path-{slug(a)}--{slug(b)}-{index}.png")
        similarities.append((torch.stack(to_a), torch.stack(to_b)))
        paths.append({"a": a, "b": b, "t": ts})
    if pairs:
        for path, (to_a, to_b) in zip(paths, similarities, strict=True):
            path |= {"similarity_a": to_a.mean(0).tolist(), "similarity_b": to_b.mean(0).tolist()}
            path["monotonic"] = _monotonic(to_a, to_b)
        spreads["interpolation_monotonic"] = jackknife(
            lambda kept: _share([_monotonic(to_a[kept], to_b[kept]) for to_a, to_b in similarities]),
            interpolation_seeds,
        ) | {"paths": len(pairs)}
        spreads["interpolation_rank_correlation"] = over_seeds(
            [sum(_rank_correlation(b[seed] - a[seed]) for a, b in similarities) / len(pairs)
             for seed in range(interpolation_seeds)]
        )  # fmt: skip
        results["interpolation_paths"] = paths
    results |= {key: spread["mean"] for key, spread in spreads.items()}
    results["spread"] = spreads
    steps.start("likeness.json")
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(output / "likeness.json", lambda path: path.write_text(text))
    steps.done(
        f"likeness of held-out photos {results['likeness_heldout']:.2f} (plain {results['likeness_plain']:.2f}, "
        f"chance {results['likeness_chance']:.2f}); the tiny SDXL draws its people by name "
        f"{results['mini_model_name_accuracy']:.2f}"
    )
    return results


def main(argv: list[str], prog: str = "magicnaming likeness") -> int:
    from namespace.command_line import run_command

    run_command(likeness, argv, prog, description=__doc__)
    return 0


__all__ = ["likeness", "main"]
