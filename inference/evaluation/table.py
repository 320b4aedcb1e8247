"""``table.md``: the evaluation's numbers in the layout of the paper's Table 1, plus the identity columns.

Table 1 of the paper has a row per method and, per task (scene construction, action control, stylization, emotional
editing), the CLIP text–image score and the FID against plain SDXL's images. We keep that layout, add KID beside FID
(FID is biased on small sets; KID is not), an overall column group, and the identity columns the paper reports
elsewhere: similarity to the reference photos, consistency across prompts and the face-detection rate.
"""

from __future__ import annotations

import math

# metric → (column title, digits); the order of the columns
TASK_METRICS = {"clip_ti": ("CLIP-TI", ".1f"), "fid": ("FID", ".1f"), "kid": ("KID", ".3g")}
IDENTITY_METRICS = {
    "reference_similarity": ("reference sim.", ".3f"),
    "identity_consistency": ("identity consistency", ".3f"),
    "face_detection_rate": ("faces found", ".2f"),
}


def results_table(results: dict) -> str:
    """A markdown table from ``results.json``'s ``methods`` (``methods.<method>.<metric>.<task|all>``) and ``tasks``."""
    methods, tasks = results["methods"], [*results["tasks"], "all"]
    header = ["method"]
    for task in tasks:
        header += [f"{'overall' if task == 'all' else task}: {title}" for title, _ in TASK_METRICS.values()]
    header += [title for title, _ in IDENTITY_METRICS.values()]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for method, metrics in methods.items():
        cells = [method]
        for task in tasks:
            for metric, (_, style) in TASK_METRICS.items():
                cells.append(_number(metrics.get(metric, {}).get(task), style))
        for metric, (_, style) in IDENTITY_METRICS.items():
            cells.append(_number(metrics.get(metric, {}).get("all"), style))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + _spread_table(results.get("spread", {}))


def _spread_table(spread: dict) -> str:
    """Every method's overall figures as mean ± standard deviation over seeds (each seed's images scored alone)."""
    shown = {"clip_ti": ("CLIP-TI", ".1f"), **{k: v for k, v in IDENTITY_METRICS.items() if k != "face_detection_rate"}}
    if not any(spread.values()):
        return ""
    seeds = next(s["seeds"] for figures in spread.values() for s in figures.values())
    lines = [f"\nOver every task, each of the {seeds} seeds scored alone (mean ± standard deviation over seeds):\n"]
    lines += ["| method | " + " | ".join(title for title, _ in shown.values()) + " |"]
    lines += ["| --- | " + " | ".join("---:" for _ in shown) + " |"]
    for method, figures in spread.items():
        cells = [
            f"{figures[m]['mean']:{style}} ± {figures[m]['std']:{style}}" if m in figures else "–"
            for m, (_, style) in shown.items()
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value: float | None, style: str) -> str:
    """A cell: the value in ``style``, ``–`` where a metric does not apply (FID of the plain pipeline against
    itself) or could not be measured (no face detector)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{style}}"
