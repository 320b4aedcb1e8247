"""HTML helpers shared by the demo's and the evaluation's reports: the page style and markdown pipe tables."""

from __future__ import annotations

from html import escape

# Command lines wrap between arguments only, never inside one (a path, `--trainer.max_epochs`): each argument is a
# nowrap span; one too long for the line scrolls sideways. Wrapped lines hang under their command.
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.6rem 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; } td, th { padding: 0.25rem 0.8rem; border-bottom: 1px solid #eee;
  text-align: left; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .caption { color: #444; }
pre { background: #f5f5f5; padding: 0.6rem; font-size: 0.8rem; overflow-x: auto; white-space: pre-wrap; }
pre .command { display: block; padding-left: 2em; text-indent: -2em; } pre .arg { white-space: nowrap; }
"""


def markdown_table_html(markdown: str) -> str:
    """The pipe tables ``results_table`` writes (and the lines between them), as HTML (numbers right-aligned)."""
    parts = []
    for block in markdown.strip().split("\n\n"):
        if block.lstrip().startswith("|"):
            parts.append(_pipe_table_html(block))
        elif block.strip():
            parts.append(f"<p>{escape(block.strip())}</p>")
    return "".join(parts)


def _pipe_table_html(markdown: str) -> str:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in markdown.strip().splitlines()]
    header, body = rows[0], rows[2:]
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    cells = ("".join(f"<td class='number'>{escape(cell)}</td>" for cell in row[1:]) for row in body)
    lines = "".join(f"<tr><th>{escape(row[0])}</th>{numbers}</tr>" for row, numbers in zip(body, cells, strict=True))
    return f"<table><tr>{head}</tr>{lines}</table>"
