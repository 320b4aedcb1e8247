"""The story's pages: panels in a grid with gutters, a caption under each; saved as PNG pages and one PDF.

Memory: the panels and one page at a time while laying out (all pages are kept for the PDF: a story's worth).
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

PAPER, INK = (255, 255, 255), (20, 20, 20)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1: a scalable font shipped with Pillow
    except TypeError:
        return ImageFont.load_default()


def _fitting(text: str, font: ImageFont.ImageFont, width: float) -> int:
    """How many leading characters of ``text`` fit in ``width`` pixels. Only prefixes up to twice the answer are
    measured (doubling, then bisecting), so a long word costs about its length, not its length squared."""
    fits, tries = 0, 1
    while tries <= len(text) and font.getlength(text[:tries]) <= width:
        fits, tries = tries, tries * 2
    tries = min(tries, len(text) + 1)  # text[:tries] does not fit, or is past the end
    while tries - fits > 1:
        middle = (fits + tries) // 2
        fits, tries = (middle, tries) if font.getlength(text[:middle]) <= width else (fits, middle)
    return fits


def wrap_caption(caption: str, font: ImageFont.ImageFont, width: int, max_lines: int) -> list[str]:
    """The caption wrapped to ``width`` pixels, at most ``max_lines`` lines (the last one ends in "…" when cut); a
    word wider than a line is broken. Time: linear in the caption's length (wrapping stops once the lines are full).
    """
    lines: list[str] = []
    for paragraph in caption.split("\n"):
        line = ""
        for word in paragraph.split():
            if len(lines) > max_lines:
                break
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(lines) <= max_lines and (cut := max(1, _fitting(word, font, width))) < len(word):
                lines.append(word[:cut])  # a word wider than the line: broken where it reaches the edge
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        if lines:
            lines[-1] = lines[-1][: _fitting(lines[-1], font, width - font.getlength("…"))].rstrip() + "…"
    return lines


def layout_pages(
    images: list[Image.Image],
    captions: list[str],
    panels_per_page: int = 4,
    columns: int | None = None,
    panel_size: int | None = 256,
    gutter: int = 16,
    caption_lines: int = 3,
    font_size: int = 14,
) -> list[Image.Image]:
    """Lays the panels out on pages: a grid, ``gutter`` pixels between panels and around the page, the caption
    wrapped under each panel in a band of ``caption_lines`` lines.

    Args:
        images: the panels, in story order.
        captions: one caption per panel.
        panels_per_page: panels on a full page (the last page holds the rest).
        columns: grid columns (None: ceil(sqrt(panels_per_page))).
        panel_size: the panels' longer side on the page (None: their own size); small panels are scaled with
            nearest-neighbour so that their pixels stay sharp.
        gutter: pixels between panels, between a panel and its caption, and at the page's edges.
        caption_lines: caption lines under each panel (longer captions are cut with "…").
        font_size: caption font size in pixels.

    Returns:
        RGB pages; every page of a story has the same size (rows for ``panels_per_page`` panels).
    """
    problems = []
    if len(images) != len(captions):
        problems.append(f"captions: expected one per panel ({len(images)}), got {len(captions)}")
    if not images:
        problems.append("images: expected at least one panel, got none")
    for argument, value, low in (("panels_per_page", panels_per_page, 1), ("gutter", gutter, 0),
                                 ("caption_lines", caption_lines, 0), ("font_size", font_size, 1),
                                 ("columns", columns, 1), ("panel_size", panel_size, 8)):  # fmt: skip
        if value is not None and value < low:
            problems.append(f"{argument}: expected at least {low}, got {value}")
    if problems:
        raise ValueError("\n".join(problems))
    columns = min(columns or math.ceil(math.sqrt(panels_per_page)), panels_per_page)
    rows = math.ceil(panels_per_page / columns)
    scaled = [_scaled(image.convert("RGB"), panel_size) for image in images]
    cell_w, cell_h = max(image.width for image in scaled), max(image.height for image in scaled)
    font = _font(font_size)
    line_height = font_size + font_size // 3
    band = caption_lines * line_height + (gutter // 2 if caption_lines else 0)
    page_w = columns * cell_w + (columns + 1) * gutter
    page_h = rows * (cell_h + band) + (rows + 1) * gutter
    pages = []
    for start in range(0, len(scaled), panels_per_page):
        page = Image.new("RGB", (page_w, page_h), PAPER)
        draw = ImageDraw.Draw(page)
        for k, (image, caption) in enumerate(zip(scaled[start : start + panels_per_page],
                                                 captions[start : start + panels_per_page], strict=True)):  # fmt: skip
            row, column = divmod(k, columns)
            x = gutter + column * (cell_w + gutter)
            y = gutter + row * (cell_h + band + gutter)
            page.paste(image, (x + (cell_w - image.width) // 2, y + (cell_h - image.height) // 2))
            draw.rectangle([x - 1, y - 1, x + cell_w, y + cell_h], outline=INK)  # the panel's frame
            for n, line in enumerate(wrap_caption(caption, font, cell_w, caption_lines)):
                draw.text((x, y + cell_h + gutter // 2 + n * line_height), line, fill=INK, font=font)
        pages.append(page)
    return pages


def _scaled(image: Image.Image, size: int | None) -> Image.Image:
    if size is None or max(image.size) == size:
        return image
    factor = size / max(image.size)
    resample = Image.Resampling.NEAREST if factor >= 2 else Image.Resampling.LANCZOS
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), resample)


__all__ = ["layout_pages", "wrap_caption"]
