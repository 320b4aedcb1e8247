"""The app's page: a tab per job, the identity dropdowns and the library gallery refreshed whenever the library
changes."""

from __future__ import annotations

import gradio as gr

from .fictional_tab import build_fictional_tab
from .generate_tab import build_generate_tab
from .identities_tab import build_identities_tab, gallery_items
from .state import AppState
from .story_tab import build_story_tab

NOTES = {
    "tiny": "The tiny test models (random weights): images are noise; the app's machinery only.",
    "miniature": (
        "The miniature world: a tiny SDXL drawing 16-pixel coloured people (shown enlarged); not a face model."
    ),
}


def build_app(state: AppState, delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    """The Blocks of the app for a loaded ``state`` (Gradio's analytics off); ``delete_cache``: Gradio's (every,
    older than) seconds for deleting uploads and cached outputs."""
    with gr.Blocks(title="MagicNaming", analytics_enabled=False, delete_cache=delete_cache) as app:
        gr.Markdown(
            f"# MagicNaming\nConsistent identities in any SDXL pipeline, without fine-tuning. Encoder "
            f"`{state.encoder_name}`, pipeline `{state.pipeline_name}`. {NOTES.get(state.defaults.kind, '')}"
        )
        with gr.Tab("Identities"):
            gallery, changes = build_identities_tab(state)
        with gr.Tab("Generate"):
            dropdowns = [build_generate_tab(state)]
        with gr.Tab("Fictional people"):
            fictional, fictional_changes = build_fictional_tab(state)
        with gr.Tab("Story"):
            dropdowns += fictional + build_story_tab(state)

        def refresh():
            labels = state.library.labels()
            return [gallery_items(state)] + [gr.update(choices=labels) for _ in dropdowns]

        for event in changes + fictional_changes:
            event.success(refresh, None, [gallery, *dropdowns])
        app.load(refresh, None, [gallery, *dropdowns])  # files added to the library while the app ran
    return app
