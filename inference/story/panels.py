"""The editable panel file: the parsed panels as YAML, written before anything is drawn and read back after edits.

Format (``format: magicnaming-panels``, ``format_version: 1``)::

    panels:
    - sentence: Mira walked on the beach.     # the caption under the panel
      prompt: <mira> walked on the beach      # what is drawn; <label> for each person
      people: [mira]                          # optional: derived from the prompt's placeholders when left out
      seed: 7                                 # optional: the story's seed + the panel's index when left out
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import yaml

from namespace.files import atomic_write

from ..placeholders import PLACEHOLDER
from .config import Character, Panel

FORMAT, FORMAT_VERSION = "magicnaming-panels", 1
HEADER = (
    "# The story's panels: edit the prompts, captions (sentence), people or seeds, then draw them with\n"
    "#   magicnaming story --config CONFIG --panels THIS_FILE --output DIR\n"
    "# Each person in a prompt is a <label> placeholder (keep spaces around it); people: the labels in the panel.\n"
)


def check_panels(panels: list[Panel], characters: list[Character], argument: str = "panels") -> None:
    """Raises one ``ValueError`` for: no panels, an empty prompt, a panel naming an unknown person (in ``people`` or
    as a ``<placeholder>``), ``people`` that differ from the prompt's placeholders, a seed that is not an integer."""
    labels = {person.label for person in characters}
    known = ", ".join(sorted(labels)) or "none"
    problems = [] if panels else [f"{argument}: expected at least one panel, got none"]
    for i, panel in enumerate(panels):
        at = f"{argument}[{i}]"
        if not isinstance(panel.prompt, str) or not panel.prompt.strip():
            problems.append(f"{at}.prompt: expected a prompt, got {panel.prompt!r}")
            continue
        placed = PLACEHOLDER.findall(panel.prompt)
        for label in dict.fromkeys([*placed, *panel.people]):
            if label not in labels:
                problems.append(f"{at} names an unknown person {label!r} ({panel.prompt!r}); characters: {known}")
        missing = [label for label in panel.people if label in labels and label not in placed]
        if missing:
            problems.append(f"{at}.people: {missing} are not in the prompt {panel.prompt!r}: add <label> for each "
                            "person drawn")  # fmt: skip
        if panel.seed is not None and (isinstance(panel.seed, bool) or not isinstance(panel.seed, int)):
            problems.append(f"{at}.seed: expected an integer or null, got {panel.seed!r}")
    if problems:
        raise ValueError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        )


def panels_to_yaml(panels: list[Panel]) -> str:
    """The editable YAML text of ``panels`` (with a comment saying how to draw it)."""
    rows = [
        {key: value for key, value in asdict(panel).items() if key != "seed" or value is not None} for panel in panels
    ]
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "panels": rows}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)


def panels_from_yaml(text: str, characters: list[Character], source: str = "panels") -> list[Panel]:
    """Panels from (edited) YAML text, checked against the characters; ``source`` names the file in errors."""
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML ({error})") from error
    rows = body.get("panels") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise ValueError(f"{source}: expected a mapping with a 'panels' list, got {type(body).__name__}")
    panels, problems = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "prompt" not in row:
            problems.append(f"{source}: panels[{i}]: expected a mapping with at least 'prompt', got {row!r}")
            continue
        extra = sorted(set(row) - {"sentence", "prompt", "people", "seed"})
        if extra:
            problems.append(f"{source}: panels[{i}]: unknown key(s) {extra}; expected sentence, prompt, people, seed")
            continue
        prompt = row["prompt"] if isinstance(row["prompt"], str) else ""
        people = row.get("people")
        if people is None:
            people = list(dict.fromkeys(PLACEHOLDER.findall(prompt)))
        elif not isinstance(people, list) or not all(isinstance(label, str) for label in people):
            problems.append(f"{source}: panels[{i}].people: expected a list of labels, got {people!r}")
            continue
        sentence = row.get("sentence")
        sentence = PLACEHOLDER.sub(r"\1", prompt) if sentence is None else str(sentence)
        panels.append(Panel(sentence=sentence, prompt=row["prompt"], people=people, seed=row.get("seed")))
    if problems:
        raise ValueError("\n".join(problems))
    check_panels(panels, characters, f"{source}: panels")
    return panels


def write_panels(panels: list[Panel], path: str | Path) -> Path:
    """Writes the editable panel file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda temporary: temporary.write_text(panels_to_yaml(panels), encoding="utf-8"))


def read_panels(path: str | Path, characters: list[Character], argument: str = "--panels") -> list[Panel]:
    """Reads and checks a panel file; errors name it as ``argument`` and the path."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}: panel file {str(path)!r} does not exist")
    return panels_from_yaml(Path(path).read_text(encoding="utf-8"), characters, f"{argument} {str(path)!r}")


__all__ = ["check_panels", "panels_from_yaml", "panels_to_yaml", "read_panels", "write_panels"]
