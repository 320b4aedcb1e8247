"""The Fictional people tab: a new identity between two others (a slider), a mix of several, or sampled from the
name space; each drawn in a portrait, and saved into the library under a name."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import gradio as gr

from namespace import Identity

from .drawing import PROGRESS, check_seed, draw, for_display, keep, shown_errors
from .library import taken
from .state import AppState

PORTRAIT = "a photo of a person"


def _portrait(state: AppState, identity: Identity, seed: float, progress: gr.Progress, kind: str):
    settings = replace(state.defaults.settings, seed=check_seed(seed, "Portrait seed"))
    image, recorded = draw(state, PORTRAIT, identity, progress, settings, description=f"drawing the {kind}")
    recorded["output"] = str(keep(state, image, recorded, kind))
    return (identity, image), for_display(image), f"{identity.label}: {identity.metadata}"


def interpolate(state: AppState, a: str, b: str, t: float, method: str, seed: float, progress=PROGRESS):
    """The identity at ``t`` on the path from ``a`` (t = 0) to ``b`` (t = 1)."""
    if not a or not b:
        raise ValueError(f"identities: pick two identities to interpolate, got {a or 'none'} and {b or 'none'}")
    person = state.naming.interpolate(state.library.load(a), state.library.load(b), float(t), method=method)
    return _portrait(state, person, seed, progress, "interpolation")


def mix(state: AppState, labels: list[str] | None, weights: str, seed: float, progress=PROGRESS):
    """A weighted mix of ``labels`` (weights: comma-separated numbers, empty: equal)."""
    labels = list(labels or [])
    if len(labels) < 2:
        raise ValueError(f"identities: pick at least two identities to mix, got {len(labels)}")
    try:
        numbers = [float(w) for w in weights.replace(",", " ").split()] if weights.strip() else None
    except ValueError as error:
        raise ValueError(f"weights: expected numbers separated by commas, e.g. 2, 1, got {weights!r}") from error
    if numbers is not None and len(numbers) != len(labels):
        raise ValueError(f"weights: expected {len(labels)} weights (one per identity), got {len(numbers)}")
    person = state.naming.mix([state.library.load(label) for label in labels], numbers, label="mix")
    return _portrait(state, person, seed, progress, "mix")


def sample(state: AppState, sample_seed: float, temperature: float, seed: float, progress=PROGRESS):
    """A new person drawn from the encoder's name-space statistics."""
    check_seed(seed, "Portrait seed")  # both, before anything is drawn
    sampled = state.naming.sample(1, seed=check_seed(sample_seed, "Sampling seed"), temperature=float(temperature))
    return _portrait(state, sampled[0], seed, progress, "sample")


def save(state: AppState, made: tuple[Identity, object] | None, label: str):
    """Saves the last made fictional identity into the library as ``label``, its portrait as the thumbnail."""
    if made is None:
        raise ValueError("identity: make one first (interpolate, mix or sample), then save it")
    identity, portrait = made
    path = state.library.save(identity, (label or "").strip(), portrait)
    return f"saved {path.stem!r}{taken(label.strip(), path.stem)} to {path}"


def build_fictional_tab(state: AppState) -> tuple[list[gr.Dropdown], list]:
    """Lays out the tab; returns its identity dropdowns and the event that changes the library."""
    labels = state.library.labels()
    made = gr.State(None)  # (identity, portrait) of the last one made, per visitor
    with gr.Row():
        with gr.Column():
            with gr.Tab("Interpolate"):
                with gr.Row():
                    a = gr.Dropdown(choices=labels, label="From (t = 0)")
                    b = gr.Dropdown(choices=labels, label="To (t = 1)")
                t = gr.Slider(-0.5, 1.5, value=0.5, step=0.05, label="t (outside 0…1 extrapolates)")
                method = gr.Radio(["lerp", "slerp"], value="lerp", label="Method")
                between = gr.Button("Interpolate", variant="primary")
            with gr.Tab("Mix"):
                parts = gr.Dropdown(choices=labels, multiselect=True, label="Identities")
                weights = gr.Textbox(label="Weights (empty: equal)", placeholder="2, 1")
                blend = gr.Button("Mix", variant="primary")
            with gr.Tab("Sample"):
                sample_seed = gr.Number(value=0, precision=0, label="Sampling seed")
                temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature")
                draw_new = gr.Button("Sample a new person", variant="primary")
            seed = gr.Number(value=0, precision=0, label="Portrait seed")
        with gr.Column():
            portrait = gr.Image(label="Portrait", type="pil", interactive=False, elem_id="fictional-image")
            details = gr.Textbox(label="Identity", interactive=False)
            label = gr.Textbox(label="Name in the library", placeholder="stranger")
            keep_button = gr.Button("Save to library")
            status = gr.Textbox(label="Status", interactive=False)
    outputs = [made, portrait, details]
    between.click(shown_errors(partial(interpolate, state)), [a, b, t, method, seed], outputs)
    blend.click(shown_errors(partial(mix, state)), [parts, weights, seed], outputs)
    draw_new.click(shown_errors(partial(sample, state)), [sample_seed, temperature, seed], outputs)
    saved = keep_button.click(shown_errors(partial(save, state)), [made, label], [status])
    return [a, b, parts], [saved]
