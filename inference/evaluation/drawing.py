"""Drawing an evaluation's images: the job list, in batches, each image written as it is made, resumable.

The jobs are method × setting (δ, η) × person × task × prompt × seed (the person before the task, so a batch can take
prompts of every task). Consecutive jobs of one method, setting and person are cut into batches of ``batch_size``
once, from the whole list, so a batch holds the same images whether the run is fresh or resumed: an image never
depends on which others were still missing. Shared over processes (``sharing.py``), process ``rank`` of ``world``
draws the (method, setting, person) groups ``rank::world`` of that same list's batches, so an image does not depend on
how many processes draw either, and each person of a method is drawn (and, for ``refined`` and ``lora``, trained) by
one process.

Each image is ``OUTPUT/<method>/<setting>/<task>/<person>/<prompt>-seed<seed>.png`` with a JSON file beside it
holding its settings; both are written atomically, the JSON last. A rerun skips an image whose PNG and JSON exist
and whose JSON holds the same settings, and redraws the rest (a killed run, or changed settings). The settings key
on content, not on paths alone: they hold the hashes of the encoder's weights and of the person's references
(``fingerprints``), so an encoder re-exported into the same folder or new photos in the same folder redraw.

Memory: the job list and each image's settings (small dicts), and one batch of decoded images at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from PIL import Image

import namespace
from namespace.files import atomic_write
from namespace.progress import progress

from .config import EvaluationConfig
from .methods import DrawingMethod, Person, Setting
from .suite import PromptSuite, SuitePrompt


@dataclass(frozen=True)
class Job:
    """One image to draw."""

    method: str
    setting: Setting
    person: str
    task: str
    prompt_index: int
    prompt: SuitePrompt
    seed: int

    def path(self, root: Path) -> Path:
        """Where its PNG goes (its settings go beside it, ``.json``)."""
        name = f"{self.prompt_index:02d}-seed{self.seed}.png"
        return Path(root) / self.method / self.setting.slug / self.task / self.person / name


@dataclass
class DrawnImage:
    """An image of the evaluation, on disk.

    Attributes:
        path: the PNG (its settings beside it as ``.json``).
        settings: what made it (method, setting, person, task, prompt, the prompt as drawn, seed, steps, ...).
        drawn: True if this run drew it, False if an earlier run had (resumed).
    """

    path: Path
    settings: dict
    drawn: bool


def plan_jobs(methods: list[DrawingMethod], suite: PromptSuite, people: list[Person], seeds: list[int]) -> list[Job]:
    """Every image of the evaluation, in drawing order: method × setting × person × task × prompt × seed."""
    return [
        Job(method.name, setting, person.label, task, index, prompt, seed)
        for method in methods
        for setting in method.settings()
        for person in people
        for task, prompts in suite.tasks.items()
        for index, prompt in enumerate(prompts)
        for seed in seeds
    ]


def generation_options(config: EvaluationConfig) -> dict:
    """The ``GenerationSettings`` fields every method draws with (``config.generation``; δ and η are each setting's,
    the seed each image's): steps, guidance, size (None: the pipeline's), and the step window when one is set (so
    images drawn without one keep the settings, and the reuse, they had before it existed)."""
    settings = config.generation()
    options = {"num_inference_steps": settings.num_inference_steps, "guidance_scale": settings.guidance_scale,
               "height": settings.height, "width": settings.width}  # fmt: skip
    return options | ({"step_window": settings.step_window} if settings.step_window is not None else {})


def image_settings(job: Job, person: Person, method: DrawingMethod, options: dict, common: dict) -> dict:
    """The settings written beside an image; an earlier image is reused only if its settings are these."""
    settings = {
        "method": job.method,
        "setting": job.setting.as_dict(),
        "person": job.person,
        "name": person.name,
        "task": job.task,
        "prompt_index": job.prompt_index,
        "prompt": job.prompt.text,
        "text": job.prompt.fill(method.subject(person)),
        "asks": dict(job.prompt.asks),
        "seed": job.seed,
        **options,
        **common,
        **method.describe(person),
    }
    return json.loads(json.dumps(settings))  # as it reads back from the JSON file (tuples → lists, ...)


def _finished(path: Path, settings: dict) -> bool:
    sidecar = path.with_suffix(".json")
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("settings") == settings
    except (OSError, ValueError):  # a sidecar from elsewhere, unreadable: draw the image again
        return False


def _write(image: Image.Image, path: Path, settings: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))
    record = {"settings": settings, "magicnaming_version": namespace.__version__}
    atomic_write(path.with_suffix(".json"), lambda t: t.write_text(json.dumps(record, indent=2) + "\n"))


def _batches(jobs: list[Job], batch_size: int) -> list[list[list[int]]]:
    """Job indices cut into batches, grouped: each group the consecutive jobs of one method, setting and person, cut
    into batches of ``batch_size`` at most."""
    groups = []
    key = lambda i: (jobs[i].method, jobs[i].setting, jobs[i].person)  # noqa: E731
    for _, group in groupby(range(len(jobs)), key=key):
        group = list(group)
        groups.append([group[start : start + batch_size] for start in range(0, len(group), batch_size)])
    return groups


def draw_images(
    jobs: list[Job],
    methods: list[DrawingMethod],
    people: list[Person],
    output: Path,
    options: dict,
    batch_size: int = 4,
    common: dict | None = None,
    on_image: Callable[[DrawnImage], None] | None = None,
    share: tuple[int, int] = (0, 1),
    label: str = "",
) -> list[DrawnImage]:
    """Draws every job not finished in ``output`` by an earlier run, batch by batch, writing each image as it is made.

    Args:
        jobs: from ``plan_jobs``.
        methods: the methods the jobs name.
        people: the people the jobs name.
        output: the images' root folder.
        options: pipeline keywords for every image (``generation_options``).
        batch_size: most images per pipeline call.
        common: more settings written beside every image (e.g. the pipeline), part of what a rerun compares.
        on_image: called after each image is written (or found finished), e.g. to stream it into a report.
        share: (rank, world): draw only the groups ``rank::world`` of the whole list of (method, setting, person)
            groups of batches (other processes draw the rest; a person's whole group in one process, so a method
            that trains per person, ``refined`` or ``lora``, trains each person once); (0, 1): all of them.
        label: names this process in its progress bar (e.g. ``2/4 on cuda:1``).

    Returns:
        the image of every job in the share's groups (every job when ``world`` is 1), in job order.
    """
    if batch_size < 1:
        raise ValueError(f"--batch_size: expected at least 1, got {batch_size}")
    rank, world = share
    if not 0 <= rank < world:
        raise ValueError(f"share: expected (rank, world) with 0 <= rank < world, got {share}")
    output, by_method, by_person = Path(output), {m.name: m for m in methods}, {p.label: p for p in people}
    settings = [image_settings(j, by_person[j.person], by_method[j.method], options, common or {}) for j in jobs]
    paths = [job.path(output) for job in jobs]
    finished = [_finished(path, s) for path, s in zip(paths, settings, strict=True)]
    results: list[DrawnImage | None] = [None] * len(jobs)
    # cut from the whole list, then shared by group: the same batches whatever the processes
    batches = [batch for group in _batches(jobs, batch_size)[rank::world] for batch in group]
    to_draw = [batch for batch in batches if not all(finished[i] for i in batch)]
    remaining, mine = sum(len(batch) for batch in to_draw), sum(len(batch) for batch in batches)
    name = f"drawing[{label}]" if label else "drawing"
    bar = progress(None, total=remaining, unit="image", desc=f"{name} ({mine - remaining} already drawn)")
    opened: DrawingMethod | None = None
    try:
        for batch in batches:
            first = jobs[batch[0]]
            method = by_method[first.method]
            if all(finished[i] for i in batch):
                for i in batch:
                    results[i] = DrawnImage(paths[i], settings[i], drawn=False)
                    if on_image:
                        on_image(results[i])
                continue
            if opened is not method:  # batches of one method are consecutive: load it once, unload it after
                if opened is not None:
                    opened.close()
                opened = None
                method.open()
                opened = method
            person = by_person[first.person]
            texts = [settings[i]["text"] for i in batch]
            images = method.draw(texts, person, first.setting, [jobs[i].seed for i in batch], options)
            for i, image in zip(batch, images, strict=True):
                if not finished[i]:  # a batch cut short by a kill: keep what was written
                    _write(image, paths[i], settings[i])
                results[i] = DrawnImage(paths[i], settings[i], drawn=not finished[i])
                if on_image:
                    on_image(results[i])
            bar.update(len(batch))
    finally:
        bar.close()
        if opened is not None:
            opened.close()
    return [image for image in results if image is not None]


__all__ = ["DrawnImage", "Job", "draw_images", "generation_options", "image_settings", "plan_jobs"]
