"""The Generate tab: a prompt, a library identity and every control of the plugin (δ, η, step window, seed, steps,
size); the image and the settings that made it (also written, PNG and JSON, to the outputs folder). Several people
in one image: ``<label>`` placeholders in the prompt name library identities (for this image only)."""

from __future__ import annotations

from functools import partial

import gradio as gr

from ..generation_settings import GenerationSettings
from ..placeholders import PLACEHOLDER
from .drawing import PROGRESS, check_seed, draw, for_display, keep, shown_errors
from .state import AppState


def generate(
    state: AppState,
    prompt: str,
    label: str | None,
    delta: float,
    eta: float,
    window_start: float,
    window_end: float,
    seed: float,
    steps: float,
    size: float,
    guidance_scale: float,
    progress=PROGRESS,
):
    """Draws the library identity ``label`` (None or empty: nobody, the plain pipeline, or the library identities
    the prompt's ``<label>`` placeholders name) in ``prompt``."""
    if window_start >= window_end:
        raise ValueError(f"step window: expected start < end, got ({window_start:g}, {window_end:g})")
    seed = check_seed(seed, "Seed")
    named = list(dict.fromkeys(PLACEHOLDER.findall(prompt or "")))
    if named and label:
        raise ValueError(
            f"prompt: its placeholders ({', '.join(f'<{n}>' for n in named)}) name the people of the image; leave "
            f"Identity empty with them, or drop them to draw {label!r}"
        )
    people = {name: state.library.load(name, f"prompt <{name}>") for name in named}
    identity = state.library.load(label) if label else None
    window = None if (window_start, window_end) == (0.0, 1.0) else (float(window_start), float(window_end))
    settings = GenerationSettings(
        num_inference_steps=int(steps),
        guidance_scale=float(guidance_scale),
        height=int(size),
        width=int(size),
        delta=float(delta),
        eta=float(eta) if eta else None,  # 0 or empty: the encoder's own η
        step_window=window,
        seed=seed,
    )
    description = f"drawing {label or ', '.join(named) or 'without an identity'}"
    image, recorded = draw(state, prompt, identity, progress, settings, people=people, description=description)
    recorded["output"] = str(keep(state, image, recorded, "generate"))
    return for_display(image), recorded


def build_generate_tab(state: AppState) -> gr.Dropdown:
    """Lays out the tab; returns its identity dropdown (refreshed when the library changes)."""
    naming, defaults = state.naming, state.defaults.settings
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", value="a photo of a person on a beach")
            identity = gr.Dropdown(
                choices=state.library.labels(), value=None, label="Identity (empty: none)", allow_custom_value=False
            )
            with gr.Row():
                delta = gr.Slider(0.0, 3.0, value=round(naming.delta, 3), step=0.01, label="δ (name guidance, eq. 4)")
                norm = round(float(naming.encoder.statistics.norm), 3)
                eta = gr.Number(value=norm, label=f"η (name norm, eq. 5; the encoder's is {norm})")
            with gr.Row():
                start = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Step window: start")
                end = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Step window: end")
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed")
                steps = gr.Slider(1, 100, value=defaults.num_inference_steps, step=1, label="Steps")
            with gr.Row():
                size = gr.Slider(8, state.defaults.max_size, value=defaults.height, step=8, label="Size (pixels)")
                guidance = gr.Slider(1.0, 15.0, value=defaults.guidance_scale, step=0.5, label="Guidance scale")
            button = gr.Button("Generate", variant="primary")
        with gr.Column():
            image = gr.Image(label="Image", type="pil", interactive=False, elem_id="generate-image")
            settings = gr.JSON(label="Settings")
    inputs = [prompt, identity, delta, eta, start, end, seed, steps, size, guidance]
    button.click(shown_errors(partial(generate, state)), inputs, [image, settings])
    return identity
