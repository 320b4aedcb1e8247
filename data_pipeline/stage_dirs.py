"""Stage outputs are folders that appear whole or not at all: a stage writes into ``NAME.partial/`` and renames it
to ``NAME/`` when done. A re-run skips finished stages and redoes half-written ones, except the stages that resume
inside their partial folder (``resume_partial``: the download through img2dataset's incremental mode; the features,
the probe and the clean stage's embedders through their committed chunks, ``chunks.py``). Memory: nothing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def finished(work: Path, stage: str) -> bool:
    return (Path(work) / stage / "_stage.json").is_file()


def run_stage(work: Path, stage: str, body: Callable[[Path], dict], resume_partial: bool = False) -> dict:
    """Runs ``body(partial_folder) -> summary`` unless ``work/stage`` is finished; returns the stage's summary.

    Args:
        work: the build's work folder.
        stage: the stage's name (its folder).
        body: writes the stage's files into the folder it is given and returns a JSON-able summary.
        resume_partial: keep a half-written folder (for stages that resume inside it, like img2dataset's
            incremental download); otherwise it is deleted and the stage starts over.
    """
    work = Path(work)
    done, partial = work / stage, work / f"{stage}.partial"
    if finished(work, stage):
        return json.loads((done / "_stage.json").read_text())
    if done.exists():  # a folder without its marker was not written by a finished stage
        shutil.rmtree(done)
    if partial.exists() and not resume_partial:
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    summary = body(partial)
    (partial / "_stage.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    os.replace(partial, done)
    return summary
