"""The demo's argument checks (every problem in one ValueError), its default configs and its output folder."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from importlib.resources import files
from pathlib import Path

MARKER = ".magicnaming-demo"  # marks a folder the demo wrote, which a re-run may replace
# the stage configs the demo's defaults name (configs/data/demo.yaml, ...), shipped with the package so that the
# defaults work from a wheel; copies of the repository's configs/ files, kept equal by tests/test_demo.py
SHIPPED_CONFIGS = "stage-configs"
STAGE_MODULES = ("lightning", "img2dataset", "faiss", "pyarrow", "matplotlib")


def shipped_config(path: Path) -> Path | None:
    """The package's copy of ``configs/<...>`` (None: the package ships no such file)."""
    parts = Path(path).parts
    if len(parts) < 2 or parts[0] != "configs":
        return None
    shipped = Path(str(files(__package__).joinpath(SHIPPED_CONFIGS, *parts[1:])))
    return shipped if shipped.is_file() else None


def config_path(path: Path, argument: str, problems: list[str]) -> Path:
    """A config file as given (from the current folder), or the package's copy of a ``configs/...`` file the demo's
    defaults name (a run outside the repository root, or from a wheel)."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = shipped_config(path)
    if shipped is not None:
        return shipped
    problems.append(f"{argument}: expected a YAML file, {str(path)!r} does not exist (run from the repository root)")
    return path


def check_output(output: Path, overwrite: bool, problems: list[str]) -> None:
    """A new or empty folder; a previous demo output only with ``overwrite``; never another non-empty folder."""
    if output.exists() and not output.is_dir():
        problems.append(f"output: expected a folder, {str(output)!r} is a file")
    elif output.is_dir() and any(output.iterdir()):
        if not (output / MARKER).exists():
            problems.append(
                f"output: {str(output)!r} is a non-empty folder that is not a previous demo output; "
                "give a new or empty folder"
            )
        elif not overwrite:
            problems.append(
                f"output: {str(output)!r} holds a previous demo output; pass --overwrite true to replace it, or "
                "give a new folder"
            )


def check_numbers(numbers: dict[str, tuple[int, int]], problems: list[str]) -> None:
    """``numbers``: argument → (value, smallest allowed value)."""
    for argument, (value, minimum) in numbers.items():
        if value < minimum:
            problems.append(f"{argument}: expected at least {minimum}, got {value}")


def check_installed(problems: list[str]) -> None:
    missing = [module for module in STAGE_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        problems.append(
            f"the demo runs the data pipeline and the trainer: pip install 'magicnaming[train,data]' "
            f"(missing: {', '.join(missing)})"
        )


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems) if len(problems) == 1 else "\n  " + "\n  ".join(problems))


def prepare_output(output: Path) -> None:
    """Empties a previous demo output (only one carrying the marker; ``check_output`` has checked ``--overwrite``)
    and marks the folder as the demo's."""
    if output.is_dir() and (output / MARKER).exists():
        print(f"replacing the previous demo output in {output}/", file=sys.stderr)
        for child in output.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("written by `magicnaming demo`, which replaces this folder when run on it again\n")
