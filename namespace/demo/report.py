"""The demo's one-page HTML report: the headline numbers, then every figure with the commands that produced it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..files import atomic_write
from ..html_report import STYLE, markdown_table_html


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
        _table(
            [(step, f"{value:.1f} s") for step, value in seconds.items() if step != "per_identity"]
            + [
                (f"one identity: {method}", f"{value:.2f} s")
                for method, value in seconds.get("per_identity", {}).items()
            ]
        ),
        "</body></html>",
    ]
    html = "\n".join(parts) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(html))
