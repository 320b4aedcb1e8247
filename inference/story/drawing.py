"""Panels through ``MagicNaming``: each character an identity registered as ``<label>``, each panel one image.

Memory: the identities (one (N, D) tensor each) and the drawn panels (PIL images) — a story's worth of images, not
more; the models are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PIL import Image

from namespace import Identity
from namespace.images import folder_images

from ..generation_settings import GenerationSettings
from ..plugin import MagicNaming
from .config import Character, Panel, Style, style_preset


def load_identities(naming: MagicNaming, characters: list[Character], check_faces: bool = True) -> dict[str, Identity]:
    """label → identity: the character's photos encoded (averaged) or its identity file; each registered on
    ``naming`` as ``<label>``.

    Args:
        check_faces: with the face stack installed, warn about a photo with no face or several (False for drawings
            and the miniature world's synthetic people).
    """
    identities = {}
    for i, person in enumerate(characters):
        if person.identity is not None:
            identity = naming.load(person.identity, label=person.label)
        else:
            photos = [person.photos] if isinstance(person.photos, str) else list(person.photos)
            references = [Path(photo) for photo in photos]
            argument = f"characters[{i}].photos"
            pictures = [p for path in references for p in ([path] if path.is_file() else folder_images(path, argument))]
            identity = naming.identity(pictures, label=person.label, check_faces=check_faces)
        naming.register(person.label, identity)
        identities[person.label] = identity
    return identities


def styled_prompts(panel: Panel, style: str | Style) -> tuple[str, str | None]:
    """(the panel's prompt with the style's suffix, the style's negative prompt or None)."""
    preset = style_preset(style)
    prompt = f"{panel.prompt}, {preset.suffix}" if preset.suffix else panel.prompt
    return prompt, preset.negative_prompt or None


def draw_panels(
    naming: MagicNaming,
    panels: list[Panel],
    identities: dict[str, Identity],
    style: str | Style = "comic",
    settings: GenerationSettings = GenerationSettings(),
    on_panel: Callable[[int, int], None] | None = None,
) -> list[tuple[Image.Image, dict]]:
    """Draws every panel; its people are the identities registered as their labels (several per image work
    through the plugin's placeholders).

    Args:
        identities: label → identity for every label the panels name (registered on ``naming`` here).
        style: a preset name (``STYLES``) or a ``Style``.
        settings: how every panel is drawn; panel i uses its own seed (the panel file's), else
            ``settings.seed + i``.
        on_panel: called with (panels done, total) after each panel (a progress bar).

    Returns:
        one (image, settings) per panel; the settings say everything that made the image.
    """
    preset = style_preset(style)
    missing = sorted({label for panel in panels for label in panel.people} - set(identities))
    if missing:
        raise ValueError(f"identities: the panels name {missing}, which have no identity (got {sorted(identities)})")
    for label, identity in identities.items():
        naming.register(label, identity)
    drawn = []
    for i, panel in enumerate(panels):
        prompt, negative = styled_prompts(panel, preset)
        seed = settings.seed + i if panel.seed is None else panel.seed
        drawn_with = replace(settings, seed=seed)
        image = naming(prompt, None, negative_prompt=negative, **drawn_with.call_arguments()).images[0]
        recorded = drawn_with.record(naming)
        described = {
            "panel": i,
            "sentence": panel.sentence,
            "prompt": prompt,
            "negative_prompt": negative,
            "people": {label: _described(identities[label]) for label in panel.people},
            "seed": seed,
            "style": style if isinstance(style, str) else preset.suffix,
            **{key: recorded[key] for key in ("delta", "eta", "step_window", "num_inference_steps", "guidance_scale")},
            "height": image.height,  # as drawn (the settings' None is the pipeline's size)
            "width": image.width,
        }
        drawn.append((image, described))
        if on_panel is not None:
            on_panel(i + 1, len(panels))
    return drawn


def _described(identity: Identity) -> dict:
    return {"label": identity.label, "source": identity.source}


__all__ = ["draw_panels", "load_identities", "styled_prompts"]
