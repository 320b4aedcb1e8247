"""Synthetic "people": drawn faces whose look is fixed per identity and varies per image (pose, scale, background).

Stand-ins for real photos in tests and demos; no binary image is ever committed.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw


def synthetic_face(identity: int, variant: int, size: int = 64) -> Image.Image:
    """Draws identity ``identity`` in its ``variant``-th photo: same skin, hair, eye colour and face shape for one
    identity; position, scale, tilt and background change with the variant."""
    look = random.Random(identity * 7919 + 1)
    skin = tuple(look.randint(90, 240) for _ in range(3))
    hair = tuple(look.randint(0, 120) for _ in range(3))
    eyes = tuple(look.randint(0, 255) for _ in range(3))
    face_ratio = look.uniform(0.75, 1.15)
    shot = random.Random(identity * 104729 + variant * 31 + 2)
    background = tuple(shot.randint(0, 255) for _ in range(3))
    scale = shot.uniform(0.55, 0.85) * size
    cx, cy = size / 2 + shot.uniform(-0.1, 0.1) * size, size / 2 + shot.uniform(-0.08, 0.08) * size

    canvas = size * 2  # drawn large, rotated, then downsampled for smooth edges
    image = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    w, h = scale * face_ratio, scale * 1.2
    x, y = 2 * cx, 2 * cy
    draw.ellipse([x - w, y - h * 1.05, x + w, y + h * 0.2], fill=hair)  # hair
    draw.ellipse([x - w * 0.85, y - h * 0.8, x + w * 0.85, y + h * 0.9], fill=skin)  # face
    for side in (-1, 1):  # eyes
        ex, ey = x + side * w * 0.35, y - h * 0.15
        draw.ellipse([ex - w * 0.14, ey - h * 0.08, ex + w * 0.14, ey + h * 0.08], fill=(250, 250, 250))
        draw.ellipse([ex - w * 0.07, ey - h * 0.07, ex + w * 0.07, ey + h * 0.07], fill=eyes)
    draw.arc(
        [x - w * 0.35, y + h * 0.2, x + w * 0.35, y + h * 0.6], 20, 160, fill=(120, 30, 40), width=max(2, size // 24)
    )
    image = image.rotate(shot.uniform(-15, 15), resample=Image.BICUBIC, fillcolor=background)
    return image.resize((size, size), Image.LANCZOS)
