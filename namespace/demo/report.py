"""The demo's one-page HTML report: the headline numbers, then every figure with the commands that produced it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..files import atomic_write

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


@dataclass
class Figure:
    """A figure of the report.

    Attributes:
        title: its heading.
        file: the PNG, relative to the report.
        caption: what it shows and how to read it.
        commands: the command lines that produced it, in order.
    """

    title: str
    file: str
    caption: str
    commands: list[str]


def _commands(lines: list[str]) -> str:
    """Shell lines as a <pre> block: a block per line, a nowrap span per argument (the text copies unchanged)."""
    blocks = (
        "<span class='command'>"
        + " ".join(f"<span class='arg'>{escape(shlex.quote(arg))}</span>" for arg in shlex.split(line))
        + "</span>"
        for line in lines
    )
    return f"<pre>{''.join(blocks)}</pre>"


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


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{escape(label)}</th><td class='number'>{escape(value)}</td></tr>" for label, value in rows
    )
    return f"<table>{cells}</table>"


def _headline(metrics: dict) -> str:
    m, photos = metrics, metrics["photos"]
    return _table(
        [
            ("held-out photos of train people: top-1 retrieval", f"{m['retrieval_top1_heldout_images']:.3f}"),
            ("chance (1 / number of names)", f"{m['chance']:.3f}"),
            ("unseen people: top-1 retrieval", f"{m['retrieval_top1_unseen_identities']:.3f}"),
            ("top-5: held-out / unseen", f"{m['retrieval_top5_heldout_images']:.3f} / "
             f"{m['retrieval_top5_unseen_identities']:.3f}"),
            ("top-5 chance (min(5, number of names) / number of names)", f"{m['chance_top5']:.3f}"),
            ("final training loss (MSE)", f"{m['final_train_loss']:.4f}"),
            ("calibrated name guidance δ (eq. 4, the plugin's default)", f"{m['delta']:.3f}"),
            ("identities: train / unseen", f"{m['train_identities']} / {m['unseen_identities']}"),
            ("photos: train / held-out / unseen", f"{photos['train']} / {photos['heldout']} / {photos['val']}"),
        ]
    )  # fmt: skip


def _identities(found: dict[str, dict], people: list) -> str:
    cells = "".join(
        f"<tr><td>{escape(person.name)}</td><td>{escape(person.kind)}</td><td class='number'>{len(person.photos)}"
        f"</td><td>{escape(found[person.name]['nearest_name'])}</td>"
        f"<td>{'yes' if found[person.name]['correct'] else 'no'}</td></tr>"
        for person in people
    )
    head = "<tr><th>person</th><th>kind</th><th>reference photos</th><th>nearest name</th><th>own name?</th></tr>"
    return f"<table>{head}{cells}</table>"


def write_report(
    path: Path,
    made_by: str | None,
    replay: str,
    metrics: dict,
    figures: list[Figure],
    people: list,
    note: str,
    evaluation: str | None = None,
) -> Path:
    """Writes the report (atomically: a killed run leaves the old report or none, never half of one).

    Args:
        path: the HTML file.
        made_by: the command line that ran the demo, as typed; None: the demo was called from Python.
        replay: the command line that replays the run from the settings the demo wrote.
        metrics: what metrics.json holds.
        figures: the figures, in order.
        people: the demo's Person records.
        note: what to read first.
        evaluation: the evaluation's ``table.md`` (``magicnaming evaluate``; its report is ``evaluation/``), or None.
    """
    seconds = metrics["seconds"]
    made = "<p>Made by a Python call to <code>namespace.demo.demo</code>.</p>"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>MagicNaming demo</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>MagicNaming demo</h1>",
        made if made_by is None else "<p>Made by</p>" + _commands([made_by]),
        f"<p>It ran in {seconds['total'] / 60:.1f} minutes. Every stage ran through its own command (listed under each "
        "figure and, in order, in <a href='work/commands.sh'>work/commands.sh</a>). This runs it again with every "
        "setting spelled out:</p>",
        _commands([replay]),
        f"<p class='note'><strong>Read this first.</strong> {escape(note)}</p>",
        "<h2>Results</h2>",
        _headline(metrics),
        "<p class='caption'>Retrieval: the encoder predicts a name embedding from a photo; it counts as right when "
        "the person's own name is the nearest (cosine) of all the data set's names. Held-out photos of train people "
        "were never trained on. Unseen people are fictional, so their names carry nothing about their looks: "
        "retrieving them is not expected here.</p>",
        "<p>Files: <a href='metrics.json'>metrics.json</a>, <a href='encoder/'>encoder/</a> (the exported name "
        "encoder), <a href='identities/'>identities/</a> (identity files), <a href='work/'>work/</a> (every "
        "stage's output).</p>",
    ]
    if evaluation:
        parts += [
            "<h2>The paper's evaluation, on the miniature world</h2>",
            markdown_table_html(evaluation),
            "<p class='caption'>Made by <code>magicnaming evaluate</code> (its command is in "
            "<a href='work/commands.sh'>work/commands.sh</a>): plain (\"a person\") and MagicNaming on the same "
            "prompts and seeds, for the reference photos' people. CLIP-TI is its miniature analogue (the attribute "
            "detectors), identity is the world's judge, FID/KID are against the plain images. Everything, with the "
            "image grids and the δ/η trade-off: <a href='evaluation/report.html'>evaluation/report.html</a>.</p>",
        ]
    for figure in figures:
        parts += [
            f"<h2>{escape(figure.title)}</h2>",
            f"<img src='{escape(figure.file)}' alt='{escape(figure.title)}'>",
            f"<p class='caption'>{escape(figure.caption)}</p>",
            "<p>Produced by:</p>" + _commands(figure.commands),
        ]
    parts += [
        "<h2>Identity files from reference photos</h2>",
        _identities(metrics["identity_files"], people),
        "<p class='caption'>Each identity file (made by <code>magicnaming identity encode</code> from photos the "
        "encoder never trained on) compared with every name of the data set, through the files alone.</p>",
        "<h2>Time per step</h2>",
        _table([(step, f"{value:.1f} s") for step, value in seconds.items()]),
        "</body></html>",
    ]
    html = "\n".join(parts) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(html))
