"""Synthetic "people": drawn faces whose look is fixed per identity and varies per image (pose, scale, background).

Stand-ins for real photos in tests and demos; no binary image is ever committed. Three prompt-controlled attributes
leave the identity (skin, hair, eye colours, face shape) intact, one in the spirit of each of the paper's tasks:
a scene (the background), an emotion (the mouth) and a style (the rendering). Without them a photo is drawn
exactly as before they existed.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter

SCENES = ("beach", "forest", "night")
EMOTIONS = ("smiling", "sad")
STYLES = ("watercolor",)
PAPER = (246, 240, 226)


def synthetic_face(
    identity: int,
    variant: int,
    size: int = 64,
    scene: str | None = None,
    emotion: str | None = None,
    style: str | None = None,
    face: bool = True,
) -> Image.Image:
    """Draws identity ``identity`` in its ``variant``-th photo: same skin, hair, eye colour and face shape for one
    identity; position, scale, tilt and background change with the variant.

    Args:
        scene: None (a plain background of a random colour), or one of ``SCENES``: sky over sand, a forest, a city
            at night.
        emotion: None (a slight smile), ``"smiling"`` (a wide open smile) or ``"sad"`` (a turned-down mouth).
        style: None (a photo) or ``"watercolor"`` (pale colours on paper, soft edges).
        face: False draws the same photo without the person (its background, scene and style only): what the
            miniature world's person detector learns "no person" from.
    """
    choices = {"scene": (scene, SCENES), "emotion": (emotion, EMOTIONS), "style": (style, STYLES)}
    for argument, (value, allowed) in choices.items():
        if value is not None and value not in allowed:
            raise ValueError(f"{argument}: expected None or one of {', '.join(allowed)}, got {value!r}")
    look = random.Random(identity * 7919 + 1)
    skin = tuple(look.randint(90, 240) for _ in range(3))
    hair = tuple(look.randint(0, 120) for _ in range(3))
    eyes = tuple(look.randint(0, 255) for _ in range(3))
    face_ratio = look.uniform(0.75, 1.15)
    shot = random.Random(identity * 104729 + variant * 31 + 2)
    background = tuple(shot.randint(0, 255) for _ in range(3))
    scale = shot.uniform(0.55, 0.85) * size
    cx, cy = size / 2 + shot.uniform(-0.1, 0.1) * size, size / 2 + shot.uniform(-0.08, 0.08) * size
    tilt = shot.uniform(-15, 15)

    canvas = size * 2  # drawn large, rotated, then downsampled for smooth edges
    image = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    w, h = scale * face_ratio, scale * 1.2
    x, y = 2 * cx, 2 * cy
    if face:
        draw.ellipse([x - w, y - h * 1.05, x + w, y + h * 0.2], fill=hair)  # hair
        draw.ellipse([x - w * 0.85, y - h * 0.8, x + w * 0.85, y + h * 0.9], fill=skin)  # face
        for side in (-1, 1):  # eyes
            ex, ey = x + side * w * 0.35, y - h * 0.15
            draw.ellipse([ex - w * 0.14, ey - h * 0.08, ex + w * 0.14, ey + h * 0.08], fill=(250, 250, 250))
            draw.ellipse([ex - w * 0.07, ey - h * 0.07, ex + w * 0.07, ey + h * 0.07], fill=eyes)
        _mouth(draw, x, y, w, h, size, emotion)
    image = image.rotate(tilt, resample=Image.BICUBIC, fillcolor=background)
    if scene is not None:
        mask = Image.new("L", (canvas, canvas), 0)
        if face:  # the person's outline keeps the person; without one the scene fills the photo
            shapes = ImageDraw.Draw(mask)
            shapes.ellipse([x - w, y - h * 1.05, x + w, y + h * 0.2], fill=255)
            shapes.ellipse([x - w * 0.85, y - h * 0.8, x + w * 0.85, y + h * 0.9], fill=255)
        mask = mask.rotate(tilt, resample=Image.BICUBIC, fillcolor=0)
        image = Image.composite(image, _scene(scene, canvas, random.Random(identity * 613 + variant * 17 + 5)), mask)
    image = image.resize((size, size), Image.LANCZOS)
    if style == "watercolor":
        image = Image.blend(image, Image.new("RGB", image.size, PAPER), 0.45)
        image = image.filter(ImageFilter.GaussianBlur(radius=size / 64))
    return image


def _mouth(draw: ImageDraw.ImageDraw, x: float, y: float, w: float, h: float, size: int, emotion: str | None) -> None:
    line = max(2, size // 24)
    if emotion is None:
        draw.arc([x - w * 0.35, y + h * 0.2, x + w * 0.35, y + h * 0.6], 20, 160, fill=(120, 30, 40), width=line)
    elif emotion == "smiling":  # a wide open smile: teeth in a dark outline
        box = [x - w * 0.45, y + h * 0.15, x + w * 0.45, y + h * 0.7]
        draw.chord(box, 0, 180, fill=(255, 255, 255), outline=(90, 10, 20), width=line)
    else:  # sad: a thick turned-down mouth, lower on the face
        draw.arc([x - w * 0.4, y + h * 0.45, x + w * 0.4, y + h * 0.85], 200, 340, fill=(60, 10, 30), width=2 * line)


def _scene(scene: str, canvas: int, rng: random.Random) -> Image.Image:
    """The background of a scene, with a little colour jitter per photo."""

    def jitter(colour: tuple[int, int, int]) -> tuple[int, ...]:
        return tuple(min(255, max(0, c + rng.randint(-12, 12))) for c in colour)

    if scene == "beach":  # sky over sand
        image = Image.new("RGB", (canvas, canvas), jitter((110, 170, 235)))
        horizon = int(canvas * rng.uniform(0.5, 0.65))
        ImageDraw.Draw(image).rectangle([0, horizon, canvas, canvas], fill=jitter((232, 205, 140)))
        return image
    if scene == "forest":  # dark green with tree trunks
        image = Image.new("RGB", (canvas, canvas), jitter((40, 110, 50)))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            left = rng.uniform(0, canvas)
            draw.rectangle([left, 0, left + canvas * 0.06, canvas], fill=jitter((90, 60, 30)))
        return image
    image = Image.new("RGB", (canvas, canvas), jitter((18, 22, 58)))  # night: lit windows in the dark
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        left, top = rng.uniform(0, canvas), rng.uniform(0, canvas)
        draw.rectangle([left, top, left + canvas * 0.05, top + canvas * 0.05], fill=jitter((235, 205, 90)))
    return image
