"""``report.html`` of an evaluation: the table, the trade-off plot and an image grid per task, on one page."""

from __future__ import annotations

from html import escape
from pathlib import Path

from namespace.files import atomic_write
from namespace.html_report import STYLE, markdown_table_html

from .table import results_table


def write_evaluation_report(
    path: Path, results: dict, grids: dict[str, str], tradeoff: str | None, command: str | None, notes: list[str]
) -> Path:
    """Writes ``report.html`` (atomically).

    Args:
        path: the HTML file.
        results: what ``results.json`` holds.
        grids: task → its image grid (PNG, relative to the report).
        tradeoff: the trade-off plot (relative), or None without a sweep.
        command: the command line as typed (None: called from Python).
        notes: what the reader must know (the scorers used, what a metric means on this pipeline).
    """
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>MagicNaming evaluation</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>MagicNaming evaluation</h1>",
        f"<p>Made by <code>{escape(command)}</code></p>" if command else "",
        *(f"<p class='note'>{escape(note)}</p>" for note in notes),
        "<h2>Results</h2>",
        markdown_table_html(results_table(results)),
        "<p class='caption'>The layout of the paper's Table 1 (per task: CLIP-TI ×100 and FID against the plain "
        "pipeline's images for the same prompts and seeds), with KID beside FID (unbiased on small sets), an overall "
        "group and the identity columns. Every number, with its settings: <a href='results.json'>results.json</a>; "
        "the table alone: <a href='table.md'>table.md</a>.</p>",
    ]
    if tradeoff:
        parts += [
            "<h2>Identity against prompt following (δ / η)</h2>",
            f"<img src='{escape(tradeoff)}' alt='trade-off'>",
            "<p class='caption'>One point per setting of the sweep, the encoder's default ringed: up is more like "
            "the reference, right follows the prompt better.</p>",
        ]
    for task, grid in grids.items():
        parts += [f"<h2>Task: {escape(task)}</h2>", f"<img src='{escape(grid)}' alt='{escape(task)}'>"]
    parts.append("</body></html>")
    html = "\n".join(part for part in parts if part) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(html))
