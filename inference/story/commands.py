"""``magicnaming story``: characters and a storyline → editable panels → panels drawn through MagicNaming → pages.

Output folder::

    panels.yaml                 the parsed panels (editable; --panels draws an edited copy)
    panels/panel-000.png        every panel's image, with its settings beside it (panel-000.json)
    page-01.png, ...            the pages: a grid, gutters, a caption under each panel
    story.pdf                   all pages
    story.json                  the story's settings and files
    judged.json                 with --judge_world: the identity judge's verdict on every (panel, named person)

An existing, non-empty output folder is refused unless --overwrite true, with one exception: the round trip the
panel file is for (``--parse_only true``, edit output/panels.yaml, draw it with ``--panels output/panels.yaml``) may
draw into the folder that holds only that file. Each run writes its folder whole, in a temporary folder moved into
place at the end: a failed run leaves the previous folder as it was, and a re-run leaves none of the previous run's
panels or pages behind (panels.yaml is kept as edited when it is the ``--panels`` being drawn).

Flags are snake_case and a boolean takes its value (``--parse_only true``, ``--overwrite true``), as in every
magicnaming command; ``--parse-only`` or a bare ``--overwrite`` is refused by name, with the form expected.
"""

from __future__ import annotations

import json
import math
import sys
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from namespace.files import atomic_folder, check_new_output
from namespace.model_names import MINIATURE, ModelName, parse_pipeline, parse_pipeline_config
from namespace.progress import Steps

from ..generation_settings import GenerationSettings
from ..inputs import InputCheck, dtype_and_device, encoder_config, identity_file
from .config import Character, LLMConfig, Panel, check_characters, style_preset
from .llm_parser import check_llm, parse_with_llm
from .panels import check_panels, panels_to_yaml, read_panel_file
from .parser import parse_storyline


@dataclass
class StoryFiles:
    """What ``story`` wrote."""

    panels_yaml: Path
    panel_images: list[Path]
    pages: list[Path]
    pdf: Path
    settings: Path
    judged: Path | None = None


def write_story(
    output: str | Path, panels: list[Panel], drawn: list[tuple[Image.Image, dict]], pages: list[Image.Image],
    settings: dict, overwrite: bool = False, panels_text: str | None = None, judged: dict | None = None,
) -> StoryFiles:  # fmt: skip
    """Writes the story folder whole: panels.yaml, every panel's image and settings, the pages (PNG), story.pdf,
    story.json and judged.json (with ``judged``); in a temporary folder moved into place at the end.

    Args:
        output: the story folder: new, or empty, or (with ``overwrite``) replaced whole.
        panels_text: panels.yaml's text (the ``--panels`` file as the user wrote it); None: ``panels`` as YAML.
        judged: the identity judge's verdicts (judged.json); None: no judged.json.

    Raises:
        FileExistsError: ``output`` exists and is not empty, without ``overwrite``.
    """
    output = check_new_output(output, "output", overwrite, folder=True)
    text = panels_to_yaml(panels) if panels_text is None else panels_text
    atomic_folder(output, lambda folder: _write_story_files(folder, text, drawn, pages, settings, judged))
    return StoryFiles(
        panels_yaml=output / "panels.yaml",
        panel_images=[output / "panels" / f"panel-{index:03d}.png" for index in range(len(drawn))],
        pages=[output / f"page-{number:02d}.png" for number in range(1, len(pages) + 1)],
        pdf=output / "story.pdf",
        settings=output / "story.json",
        judged=None if judged is None else output / "judged.json",
    )


def _write_story_files(folder: Path, panels_text, drawn, pages, settings, judged) -> None:
    (folder / "panels").mkdir()
    (folder / "panels.yaml").write_text(panels_text, encoding="utf-8")
    images = []
    for index, (image, panel_settings) in enumerate(drawn):
        images.append(Path("panels") / f"panel-{index:03d}.png")
        image.save(folder / images[-1], format="PNG")
        (folder / images[-1]).with_suffix(".json").write_text(json.dumps(panel_settings, indent=2) + "\n")
    page_names = [f"page-{number:02d}.png" for number in range(1, len(pages) + 1)]
    for name, page in zip(page_names, pages, strict=True):
        page.save(folder / name, format="PNG")
    pages[0].save(folder / "story.pdf", format="PDF", save_all=True, append_images=pages[1:], resolution=96)
    files = {"panels_yaml": "panels.yaml", "panels": [str(path) for path in images], "pages": page_names}
    files["pdf"] = "story.pdf"
    (folder / "story.json").write_text(json.dumps({**settings, "files": files}, indent=2) + "\n")
    if judged is not None:
        (folder / "judged.json").write_text(json.dumps(judged, indent=2) + "\n")


def check_story_output(output: str | Path, panels: str | Path | None, parse_only: bool, overwrite: bool) -> None:
    """Refuses an existing, non-empty ``--output`` unless ``overwrite`` (the rule and its one exception: module doc);
    the message says what to do: draw the folder's panels.yaml with ``--panels``, or pass ``--overwrite true``.

    Raises:
        FileExistsError: naming ``--output`` and the path.
    """
    output = Path(output)
    panels_yaml = output / "panels.yaml"
    drawing_own_file = _own_panel_file(output, panels)
    if drawing_own_file and parse_only:  # checks the panel file, writes nothing
        return
    if overwrite or not output.is_dir():
        check_new_output(output, "--output", overwrite, folder=True)  # a file in the way is refused too
        return
    names = {path.name for path in output.iterdir() if not path.name.startswith(".")}
    if drawing_own_file and names == {"panels.yaml"}:
        return
    if drawing_own_file:
        raise FileExistsError(
            f"--output: {str(output)!r} already holds a drawn story; pass --overwrite true to redraw --panels "
            f"{panels_yaml} there (its previous panels and pages are removed, panels.yaml is kept as you edited it), "
            "or choose another --output"
        )
    if "panels.yaml" in names:
        instead = "a new parse of the storyline" if panels is None else f"--panels {panels}"
        raise FileExistsError(
            f"--output: {str(panels_yaml)!r} already exists and may hold your edits; this run would replace it with "
            f"{instead}: draw it with --panels {panels_yaml}, or pass --overwrite true to replace {str(output)!r} "
            "whole"
        )
    check_new_output(output, "--output", overwrite, folder=True)


def story(
    encoder: str,
    pipeline: str,
    characters: list[Character],
    output: Path,
    storyline: str = "",
    panels: Path | None = None,
    parse_only: bool = False,
    parser: Literal["builtin", "llm"] = "builtin",
    llm: LLMConfig | None = None,
    style: str = "comic",
    panels_per_page: int = 4,
    columns: int | None = None,
    panel_size: int | None = 256,
    gutter: int = 16,
    settings: GenerationSettings = GenerationSettings(),
    check_faces: bool = True,
    judge_world: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
    pipeline_config: str | None = None,
) -> StoryFiles | Path:
    """Draws a story with consistent characters: storyline → editable panels → pages (PNG and PDF).

    The storyline is split into panels (checked against the caps before anything is drawn; ``--parse_only true``
    writes them to panels.yaml to edit), each panel is drawn through MagicNaming with its people as ``<label>``
    placeholders, and the panels are laid out on pages. Panel i is drawn with ``--seed`` + i, unless the panel file
    gives it a seed.

    Args:
        encoder: name-encoder folder or Hub id (``tiny``: the tiny test encoder, with ``--pipeline tiny``).
        pipeline: SDXL-family pipeline folder or Hub id, or a single-file SDXL checkpoint (``*.safetensors``);
            ``miniature``: the miniature world's tiny SDXL (built once and cached), or a miniature world's folder;
            ``tiny``: the offline tiny test pipeline (noise images).
        characters: the story's people: each a label, a name, and photos or an identity file.
        output: folder for panels.yaml, the panels, the pages, story.pdf and story.json.
        storyline: the story as free text (one panel per sentence with the built-in parser).
        panels: draw this (edited) panel file instead of parsing the storyline.
        parse_only: only write output/panels.yaml (edit it, then draw it with --panels).
        parser: builtin (no network) or llm (an OpenAI-compatible chat endpoint: --llm).
        llm: the chat endpoint of the llm parser (base_url, model, temperature, timeout); the API key is read from
            the environment variable MAGICNAMING_LLM_API_KEY only.
        style: a style preset: none, comic, cinematic, watercolor, sketch, anime or photo.
        panels_per_page: panels on a page.
        columns: grid columns (default: ceil(sqrt(panels_per_page))).
        panel_size: a panel's longer side on the page in pixels (null: as drawn).
        gutter: pixels between panels and around the page.
        settings: how the panels are drawn (steps, guidance, panel height and width, δ, η, step window, seed).
        check_faces: warn about a character photo with no face or several (needs the face stack; false for
            drawings and synthetic people).
        judge_world: a miniature world folder, or ``miniature``: its identity judge checks that every person a
            panel names is in it (judged.json); characters' names must be the world's famous people.
        dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.
        device: auto, cpu, cuda, cuda:1, ...
        overwrite: replace an existing output folder whole (otherwise it is refused, except for drawing
            ``--panels OUTPUT/panels.yaml`` into the folder that holds only it).
        pipeline_config: for a single-file --pipeline: a diffusers pipeline folder (offline) or Hub id whose configs
            describe it; default: the one diffusers infers for the checkpoint, which needs that repository's configs
            in the local Hub cache when offline.

    Returns:
        the files written (``StoryFiles``); with parse_only, the panel file's path.
    """
    output = Path(output)
    with InputCheck() as check:
        check(check_characters, characters, "characters")
        check(style_preset, style, "style")
        if panels is None and parser == "llm" and llm is None:
            check.problem("llm: parser llm needs an endpoint (llm.base_url, llm.model), got none")
        if parser not in ("builtin", "llm"):
            check.problem(f"parser: expected builtin or llm, got {parser!r}")
        for argument, value, low in (("panels_per_page", panels_per_page, 1), ("gutter", gutter, 0),
                                     ("columns", columns, 1), ("panel_size", panel_size, 8)):  # fmt: skip
            if value is not None and value < low:
                check.problem(f"{argument}: expected at least {low}, got {value}")
        for problem in settings.problems():  # the seeds of every panel are checked once the panels are known
            check.problem(problem)
        if panels is not None and not Path(panels).is_file():
            check.problem(f"--panels: panel file {str(panels)!r} does not exist")
        if panels is None and parser == "llm" and llm is not None:
            check(check_llm, llm)
        check(check_story_output, output, panels, parse_only, overwrite)
        if not parse_only:
            config = check(encoder_config, encoder)
            for i, person in enumerate(characters):
                if person.identity is not None and Path(person.identity).is_file() and config is not None:
                    check(identity_file, Path(person.identity), config, f"characters[{i}].identity")
            check(parse_pipeline_config, pipeline_config, check(parse_pipeline, pipeline))
            check(dtype_and_device, dtype, device)
            if judge_world is not None and _judge_world(judge_world) is None:
                check.problem(
                    f"--judge_world: expected a miniature world folder (with world.json), got {judge_world!r}"
                )
    story_panels, panels_text = _story_panels(storyline, characters, panels, parser, llm)
    if parse_only:
        return _write_panel_file(output, panels, len(story_panels), panels_text)
    with InputCheck() as check:  # panel i draws with seed + i: every one must fit torch's generator
        for problem in settings.problems(len(story_panels)):
            check.problem(problem)
    arguments = {"storyline": storyline, "panels": panels, "parser": parser, "llm": llm, "style": style}
    arguments |= {"settings": settings, "check_faces": check_faces, "judge_world": judge_world}
    arguments |= {"panels_per_page": panels_per_page, "columns": columns, "panel_size": panel_size, "gutter": gutter}
    arguments |= {"dtype": dtype, "device": device, "pipeline_config": pipeline_config}
    return _draw(encoder, pipeline, characters, output, story_panels, panels_text, arguments)


def _judge_world(text: str) -> ModelName | None:
    """``--judge_world`` as a miniature world (``miniature`` or a world's folder), or None when it names none."""
    try:
        name = parse_pipeline(text, "--judge_world")
    except (ValueError, OSError):
        return None
    return name if name.kind in (MINIATURE, "world") else None


def _story_panels(storyline, characters, panels, parser, llm) -> tuple[list[Panel], str]:
    """The panels and panels.yaml's text: the panel file as written, or the storyline parsed; checked (caps
    included) before anything is drawn."""
    if panels is not None:
        return read_panel_file(panels, characters)
    if parser == "llm":
        parsed = parse_with_llm(storyline, characters, llm)
    else:
        parsed = parse_storyline(storyline, characters)
        check_panels(parsed, characters, "storyline")
    return parsed, panels_to_yaml(parsed)


def _own_panel_file(output: Path, panels: str | Path | None) -> bool:
    """Whether ``--panels`` is the output folder's own panels.yaml (the parse → edit → draw round trip)."""
    return panels is not None and Path(panels).resolve() == (Path(output) / "panels.yaml").resolve()


def _write_panel_file(output: Path, panels: str | Path | None, count: int, panels_text: str) -> Path:
    """``--parse_only true``: the folder replaced by one holding panels.yaml alone; nothing written when ``--panels`` is
    that file (it was only checked)."""
    panels_yaml = output / "panels.yaml"
    if _own_panel_file(output, panels):
        print(f"checked the {count} panels of {panels_yaml}: draw them with --panels {panels_yaml}")
        return panels_yaml
    atomic_folder(output, lambda folder: (folder / "panels.yaml").write_text(panels_text, encoding="utf-8"))
    print(f"wrote {count} panels to {panels_yaml}: edit it, then draw it with --panels {panels_yaml}")
    return panels_yaml


def _draw(encoder, pipeline, characters, output, story_panels, panels_text, arguments) -> StoryFiles:
    from ..loading import load_naming
    from .drawing import draw_panels, load_identities
    from .page import layout_pages

    pipeline_path = parse_pipeline(pipeline).location()  # the miniature world built first when not cached
    judge_world = None if arguments["judge_world"] is None else _judge_world(arguments["judge_world"]).world()
    steps = Steps(total=4 + len(story_panels) + (judge_world is not None))
    naming = load_naming(
        encoder, pipeline_path, steps, "text2img", arguments["dtype"], arguments["device"], arguments["pipeline_config"]
    )
    steps.start(f"identities of {len(characters)} character(s)")
    identities = load_identities(naming, characters, check_faces=arguments["check_faces"])
    settings = arguments["settings"]
    steps.start(f"panel 1/{len(story_panels)}: {story_panels[0].sentence[:60]}")

    def on_panel(done: int, total: int) -> None:
        if done < total:
            steps.start(f"panel {done + 1}/{total}: {story_panels[done].sentence[:60]}")

    drawn = draw_panels(naming, story_panels, identities, arguments["style"], settings, on_panel)
    pages_count = math.ceil(len(drawn) / arguments["panels_per_page"])
    steps.start(f"laying out {pages_count} page(s)")
    page_options = {key: arguments[key] for key in ("panels_per_page", "columns", "panel_size", "gutter")}
    pages = layout_pages([image for image, _ in drawn], [panel.sentence for panel in story_panels], **page_options)
    story_settings = {
        "encoder": encoder,
        "pipeline": pipeline_path,
        "pipeline_config": arguments["pipeline_config"],
        "characters": [asdict(person) for person in characters],
        "storyline": arguments["storyline"],
        "panels_file": None if arguments["panels"] is None else str(arguments["panels"]),
        "parser": arguments["parser"],
        "llm": None if arguments["llm"] is None else asdict(arguments["llm"]),
        "style": arguments["style"],
        "seed": settings.seed,
        **(asdict(settings) | {"step_window": None if settings.step_window is None else list(settings.step_window)}),
        **page_options,
    }
    judged = None
    if judge_world is not None:
        from .judging import judge_story

        steps.start("the identity judge: is every named person in the panels that name them?")
        judged = judge_story(judge_world, story_panels, [image for image, _ in drawn], characters)
        print(f"the judge recognises {judged['recognised']:.2f} of {judged['pairs']} (panel, named person) pairs "
              f"(chance {judged['chance']:.2f})")  # fmt: skip
    # the output was checked before anything was loaded (check_story_output): the folder is replaced whole now
    files = write_story(output, story_panels, drawn, pages, story_settings, True, panels_text, judged)
    steps.done(f"wrote {len(drawn)} panels, {len(pages)} page(s) and story.pdf to {output}/")
    return files


def _flag_problems(argv: list[str]) -> list[str]:
    """What is wrong with the spelling of ``story``'s flags in ``argv``: a kebab-case flag (``--parse-only``: every
    magicnaming flag is snake_case) and a boolean without its value (a bare ``--parse_only``: a boolean is
    ``--parse_only true`` or ``--parse_only false``). jsonargparse would say only "unrecognized arguments" or
    "expected one argument"; each problem here names the argument and the form expected."""
    from namespace.command_line import flat_parameters

    parameters = typing.get_type_hints(story)
    for settings_class in flat_parameters(story).values():  # their fields are top-level flags (--num_inference_steps)
        parameters |= typing.get_type_hints(settings_class)
    booleans = {name for name, hint in parameters.items() if hint is bool}
    problems = []
    for index, item in enumerate(argv):
        flag = item.split("=", 1)[0]
        if not flag.startswith("--"):
            continue
        name = flag[2:]
        snake = name.replace("-", "_")
        if snake != name and snake.split(".")[0] in parameters:
            form = f"--{snake} true or --{snake} false" if snake in booleans else f"--{snake}"
            problems.append(f"argument {flag}: expected {form} (every magicnaming flag is snake_case)")
        elif name in booleans and "=" not in item and (index + 1 == len(argv) or argv[index + 1].startswith("--")):
            problems.append(f"argument {flag}: expected {flag} true or {flag} false, got no value (a boolean flag "
                            "takes its value)")  # fmt: skip
    return problems


def main(argv: list[str], prog: str = "magicnaming story") -> int:
    from namespace.command_line import run_command

    problems = _flag_problems(argv)
    if problems:  # a usage error, as jsonargparse reports one: on stderr, exit status 2
        print(f"{prog}: error: " + "\n  ".join(problems) + f"\n(see {prog} --help)", file=sys.stderr)
        raise SystemExit(2)
    run_command(story, argv, prog)
    return 0


__all__ = ["StoryFiles", "main", "story", "write_story"]
