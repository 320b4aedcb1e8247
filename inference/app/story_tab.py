"""The Story tab: characters from the library, a storyline parsed into panels (shown as editable YAML), the panels
drawn through the plugin with a style and laid out as a page (``namespace.inference.story``).

Memory: the story's panel images (panels × height × width × 3 bytes) and its pages; all written to the outputs
folder too (``magicnaming story``'s files: panels.yaml, the panels with their settings, the pages, story.pdf), a
folder of its own per story. The panels take turns on the pipeline one at a time, so other visitors' images are drawn
between them.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from functools import partial

import gradio as gr

from .drawing import PROGRESS, check_seed, new_output, shown_errors
from .state import AppState, pipeline_turn

NAME_LINE = re.compile(r"^\s*([A-Za-z][\w-]*)\s*=\s*([^,]+?)\s*(?:,\s*(he|she|they)\s*)?$")
EXAMPLE_STORYLINE = "Alice walks on a beach. She meets Bob in the forest."


def story_module():
    """``namespace.inference.story``, or None when it cannot be imported (the tab then says so)."""
    try:
        from namespace.inference import story
    except ImportError:
        return None
    return story if hasattr(story, "draw_panels") else None


def characters(state: AppState, labels: list[str] | None, names: str) -> list:
    """Story characters for the chosen library labels; ``names`` lines ``label = Full Name[, he|she|they]`` give
    full names and pronouns (a label without one is named by its label)."""
    story = story_module()
    labels = list(labels or [])
    if not labels:
        raise ValueError("characters: pick at least one identity from the library")
    given = {}
    for number, line in enumerate((names or "").splitlines(), 1):
        if not line.strip():
            continue
        match = NAME_LINE.match(line)
        if not match:
            raise ValueError(f"names, line {number}: expected 'label = Full Name[, he|she|they]', got {line!r}")
        given[match[1]] = (match[2], match[3])
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise ValueError(f"names: {', '.join(unknown)} not among the chosen characters ({', '.join(labels)})")
    entries = {entry.label: entry.path for entry in state.library.entries()}
    missing = [label for label in labels if label not in entries]
    if missing:
        raise ValueError(f"characters: {', '.join(missing)} not in the library")
    return [
        story.Character(
            label=label,
            name=given.get(label, (None, None))[0],
            identity=str(entries[label]),
            pronoun=given.get(label, (None, None))[1],
        )
        for label in labels
    ]


def parse(state: AppState, labels: list[str] | None, names: str, storyline: str) -> str:
    """The storyline as editable panel YAML (the built-in parser: no network)."""
    story = story_module()
    return story.panels_to_yaml(story.parse_storyline(storyline or "", characters(state, labels, names)))


def draw_story(
    state: AppState,
    labels: list[str] | None,
    names: str,
    panels_text: str,
    style: str,
    panels_per_page: float,
    seed: float,
    steps: float,
    size: float,
    progress=PROGRESS,
):
    """Draws the (edited) panels and lays them out; returns the first page, the panels and a status line."""
    story = story_module()
    cast = characters(state, labels, names)
    if not (panels_text or "").strip():
        raise ValueError("panels: parse the storyline first (or write panels YAML)")
    panels = story.panels_from_yaml(panels_text, cast, "panels")
    size = int(size)
    if size % 8 or not 8 <= size <= state.defaults.max_size:
        raise ValueError(f"size: expected a multiple of 8 from 8 to {state.defaults.max_size}, got {size}")
    seed = check_seed(seed, "Seed")
    seeds = panel_seeds(panels, seed)
    settings = replace(state.defaults.settings, num_inference_steps=int(steps), height=size, width=size, seed=seed)
    identities = {character.label: state.library.load(character.label) for character in cast}
    progress((0, len(panels)), desc="drawing panels", unit="panels")
    drawn = []
    for index, (panel, panel_seed) in enumerate(zip(panels, seeds, strict=True)):
        with pipeline_turn(state) as naming:  # a turn per panel: other visitors' images go between them
            panel_settings = replace(settings, seed=panel_seed)  # the panel's own seed, else the story's + index
            ((image, recorded),) = story.draw_panels(naming, [panel], identities, style, panel_settings)
        drawn.append((image, recorded | {"panel": index}))
        progress((index + 1, len(panels)), desc="drawing panels", unit="panels")
    images = [image for image, _ in drawn]
    pages = story.layout_pages(images, [panel.sentence for panel in panels], panels_per_page=int(panels_per_page))
    story_settings = {"style": style, "seed": seed, "num_inference_steps": int(steps), "size": size}
    story_settings |= {"encoder": state.encoder_name, "pipeline": state.pipeline_name}
    story_settings["characters"] = [c.label for c in cast]
    folder = new_output(state.outputs, f"story-{time.strftime('%Y%m%d-%H%M%S')}")
    files = story.write_story(folder, panels, drawn, pages, story_settings)
    gallery = [(str(path), panel.sentence) for path, panel in zip(files.panel_images, panels, strict=True)]
    status = f"{len(panels)} panel(s), {len(pages)} page(s): {files.pages[0].parent} (PDF: {files.pdf.name})"
    return str(files.pages[0]), gallery, status


def panel_seeds(panels: list, seed: int) -> list[int]:
    """Each panel's seed (its own, else the story's ``seed`` + its index), all checked before any is drawn."""
    return [
        check_seed(seed + index, f"Seed + {index} (panel {index + 1})")
        if panel.seed is None
        else check_seed(panel.seed, f"panels[{index}].seed")
        for index, panel in enumerate(panels)
    ]


def build_story_tab(state: AppState) -> list[gr.Dropdown]:
    """Lays out the tab (or a note when the story package is missing); returns its identity dropdowns."""
    story, defaults = story_module(), state.defaults.settings
    if story is None:
        gr.Markdown("**Stories are not available**: `namespace.inference.story` could not be imported.")
        return []
    with gr.Row():
        with gr.Column():
            cast = gr.Dropdown(choices=state.library.labels(), multiselect=True, label="Characters (from the library)")
            names = gr.Textbox(label="Full names (optional): label = Full Name[, he|she|they], one per line", lines=2)
            storyline = gr.Textbox(label="Storyline", lines=4, value=EXAMPLE_STORYLINE)
            parse_button = gr.Button("Parse into panels")
            panels = gr.Code(label="Panels (editable YAML)", language="yaml", interactive=True, elem_id="story-panels")
            with gr.Row():
                style = gr.Dropdown(choices=list(story.STYLES), value="comic", label="Style")
                per_page = gr.Slider(1, 9, value=4, step=1, label="Panels per page")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed")
                steps = gr.Slider(1, 100, value=defaults.num_inference_steps, step=1, label="Steps")
                size = gr.Slider(8, state.defaults.max_size, value=defaults.height, step=8, label="Size")
            draw_button = gr.Button("Draw the story", variant="primary")
        with gr.Column():
            page = gr.Image(label="Page", type="filepath", interactive=False, elem_id="story-page")
            panel_images = gr.Gallery(label="Panels", columns=4, height="auto")
            status = gr.Textbox(label="Status", interactive=False)
    parse_button.click(shown_errors(partial(parse, state)), [cast, names, storyline], [panels])
    inputs = [cast, names, panels, style, per_page, seed, steps, size]
    draw_button.click(shown_errors(partial(draw_story, state)), inputs, [page, panel_images, status])
    return [cast]
