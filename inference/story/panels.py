"""The editable panel file: the parsed panels as YAML, written before anything is drawn and read back after edits.

Format (``format: magicnaming-panels``, ``format_version: 1``)::

    panels:
    - sentence: Mira walked on the beach.     # the caption under the panel
      prompt: <mira> walked on the beach      # what is drawn; <label> for each person
      people: [mira]                          # optional: derived from the prompt's placeholders when left out
      seed: 7                                 # optional: the story's seed + the panel's index when left out

Caps (``config``): at most ``MAX_PANELS`` panels, a sentence of at most ``MAX_SENTENCE_CHARS`` characters and a
prompt of at most ``MAX_PROMPT_CHARS``, a file of at most ``MAX_PANEL_TEXT_CHARS``; checked before anything is drawn.
"""

from __future__ import annotations

import reprlib
from dataclasses import asdict
from pathlib import Path

import yaml

from namespace.files import atomic_write

from ..placeholders import PLACEHOLDER
from .config import (
    MAX_PANEL_TEXT_CHARS,
    MAX_PANELS,
    MAX_PROMPT_CHARS,
    MAX_SENTENCE_CHARS,
    Character,
    Panel,
    raise_problems,
)

FORMAT, FORMAT_VERSION = "magicnaming-panels", 1
HEADER = (
    "# The story's panels: edit the prompts, captions (sentence), people or seeds, then draw them with\n"
    "#   magicnaming story --config CONFIG --panels THIS_FILE --output DIR\n"
    "# Each person in a prompt is a <label> placeholder (keep spaces around it); people: the labels in the panel.\n"
)


def check_panel_count(count: int, argument: str = "panels") -> None:
    """Raises ``ValueError`` unless 1 ≤ ``count`` ≤ ``MAX_PANELS``."""
    if count < 1:
        raise ValueError(f"{argument}: expected at least one panel, got none")
    if count > MAX_PANELS:
        raise ValueError(f"{argument}: expected at most {MAX_PANELS} panels (the limit of one story: split it into "
                         f"several), got {count}")  # fmt: skip


def check_panels(panels: list[Panel], characters: list[Character], argument: str = "panels") -> None:
    """Raises one ``ValueError`` for: no panels or more than ``MAX_PANELS``, an empty prompt, a prompt or sentence
    over its length cap, a panel naming an unknown person (in ``people`` or as a ``<placeholder>``), ``people`` that
    differ from the prompt's placeholders, a seed that is not an integer."""
    check_panel_count(len(panels), argument)
    labels = {person.label for person in characters}
    known = ", ".join(sorted(labels)) or "none"
    problems = []
    for i, panel in enumerate(panels):
        at = f"{argument}[{i}]"
        for field, cap in (("sentence", MAX_SENTENCE_CHARS), ("prompt", MAX_PROMPT_CHARS)):
            text = getattr(panel, field)
            if isinstance(text, str) and len(text) > cap:
                problems.append(f"{at}.{field}: expected at most {cap} characters, got {len(text)} "
                                f"({text[:40]!r}…)")  # fmt: skip
        if not isinstance(panel.prompt, str) or not panel.prompt.strip():
            problems.append(f"{at}.prompt: expected a prompt, got {reprlib.repr(panel.prompt)}")
            continue
        if len(panel.prompt) > MAX_PROMPT_CHARS:
            continue
        placed = PLACEHOLDER.findall(panel.prompt)
        for label in dict.fromkeys([*placed, *panel.people]):
            if label not in labels:
                problems.append(f"{at} names an unknown person {reprlib.repr(label)} ({panel.prompt!r}); characters: "
                                f"{known}")  # fmt: skip
        missing = [label for label in panel.people if label in labels and label not in placed]
        if missing:
            problems.append(f"{at}.people: {missing} are not in the prompt {panel.prompt!r}: add <label> for each "
                            "person drawn")  # fmt: skip
        if panel.seed is not None and (isinstance(panel.seed, bool) or not isinstance(panel.seed, int)):
            problems.append(f"{at}.seed: expected an integer or null, got {reprlib.repr(panel.seed)}")
    raise_problems(problems)


def panels_to_yaml(panels: list[Panel]) -> str:
    """The editable YAML text of ``panels`` (with a comment saying how to draw it)."""
    rows = [
        {key: value for key, value in asdict(panel).items() if key != "seed" or value is not None} for panel in panels
    ]
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "panels": rows}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)


def panels_from_yaml(text: str, characters: list[Character], source: str = "panels") -> list[Panel]:
    """Panels from (edited) YAML text, checked against the characters; ``source`` names the file in errors."""
    if len(text) > MAX_PANEL_TEXT_CHARS:
        raise ValueError(f"{source}: expected at most {MAX_PANEL_TEXT_CHARS} characters of panels, got {len(text)}")
    try:
        body = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe_load, with libyaml's speed
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML ({error})") from error
    return panels_from_rows(body, characters, source)


def panels_from_rows(body: object, characters: list[Character], source: str = "panels") -> list[Panel]:
    """Panels from the loaded panel file (or an LLM's JSON answer): ``{"panels": [row, ...]}`` or the list itself;
    the count is checked first, then every row, then the panels against the characters."""
    rows = body.get("panels") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise ValueError(f"{source}: expected a mapping with a 'panels' list, got {type(body).__name__}")
    check_panel_count(len(rows), f"{source}: panels")
    panels, problems = [], []
    for i, row in enumerate(rows):
        panel = _panel(row)
        if isinstance(panel, str):
            problems.append(f"{source}: panels[{i}]{panel}")
        else:
            panels.append(panel)
    if problems:
        raise ValueError("\n".join(problems))
    check_panels(panels, characters, f"{source}: panels")
    return panels


def _panel(row: object) -> Panel | str:
    """One row as a ``Panel``, or what is wrong with it (values quoted with ``reprlib``: bounded, whatever the row
    holds)."""
    if not isinstance(row, dict) or "prompt" not in row:
        return f": expected a mapping with at least 'prompt', got {reprlib.repr(row)}"
    extra = sorted(str(key) for key in set(row) - {"sentence", "prompt", "people", "seed"})
    if extra:
        return f": unknown key(s) {reprlib.repr(extra)}; expected sentence, prompt, people, seed"
    prompt = row["prompt"] if isinstance(row["prompt"], str) else ""
    people = row.get("people")
    if people is None:
        people = list(dict.fromkeys(PLACEHOLDER.findall(prompt)))
    elif not isinstance(people, list) or not all(isinstance(label, str) for label in people):
        return f".people: expected a list of labels, got {reprlib.repr(people)}"
    sentence = row.get("sentence")
    if not isinstance(sentence, str | int | float | None):  # a nested structure (or YAML aliases) is no caption
        return f".sentence: expected text, got {type(sentence).__name__}"
    sentence = PLACEHOLDER.sub(r"\1", prompt) if sentence is None else str(sentence)
    return Panel(sentence=sentence, prompt=row["prompt"], people=people, seed=row.get("seed"))


def write_panels(panels: list[Panel], path: str | Path) -> Path:
    """Writes the editable panel file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda temporary: temporary.write_text(panels_to_yaml(panels), encoding="utf-8"))


def read_panels(path: str | Path, characters: list[Character], argument: str = "--panels") -> list[Panel]:
    """Reads and checks a panel file; errors name it as ``argument`` and the path."""
    return read_panel_file(path, characters, argument)[0]


def read_panel_file(
    path: str | Path, characters: list[Character], argument: str = "--panels"
) -> tuple[list[Panel], str]:
    """A panel file's checked panels and its text as read (one read: what is checked is what is kept)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}: panel file {str(path)!r} does not exist")
    size = Path(path).stat().st_size
    if size > 4 * MAX_PANEL_TEXT_CHARS:  # (UTF-8: up to 4 bytes a character) the text is measured once read
        raise ValueError(f"{argument}: panel file {str(path)!r} has {size} bytes, expected at most "
                         f"{MAX_PANEL_TEXT_CHARS} characters of panels")  # fmt: skip
    text = Path(path).read_text(encoding="utf-8")
    return panels_from_yaml(text, characters, f"{argument} {str(path)!r}"), text


__all__ = [
    "check_panel_count",
    "check_panels",
    "panels_from_rows",
    "panels_from_yaml",
    "panels_to_yaml",
    "read_panel_file",
    "read_panels",
    "write_panels",
]
