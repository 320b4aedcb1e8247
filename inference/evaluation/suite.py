"""Prompt suites: the paper's four tasks (scene construction, action control, stylization, emotional editing) →
prompts about one person, each with a ``{person}`` placeholder that the method fills.

The paper's prompts are not public: the ``sdxl`` suite's prompts were written for this project, five per task, in
the spirit of the paper's examples. The ``miniature`` suite is made of the miniature world's own caption words
(``namespace.miniature.captions``), each prompt with the attribute it asks for so the world's detectors can score it;
that world has scenes, emotions and a style but no actions, so its suite has no action task.

A suite in YAML::

    tasks:
      scene:
        - a photo of {person} on a beach        # a prompt alone
        - text: a photo of {person} in a forest
          asks: {scene: forest}                 # and the attribute a detector can check
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PERSON_PLACEHOLDER = "{person}"
PAPER_TASKS = ("scene", "action", "style", "emotion")
BUILT_IN = ("sdxl", "miniature")

_SDXL_PROMPTS = {
    "scene": [
        "a photo of {person} standing on a beach at sunset",
        "a photo of {person} walking through a snowy forest",
        "a photo of {person} in a busy city street at night, neon lights",
        "a photo of {person} sitting in a cozy cafe by the window",
        "a photo of {person} on a mountain summit above the clouds",
    ],
    "action": [
        "a photo of {person} riding a horse",
        "a photo of {person} playing the guitar on stage",
        "a photo of {person} cooking in a kitchen",
        "a photo of {person} reading a book in a park",
        "a photo of {person} running a marathon",
    ],
    "style": [
        "an oil painting of {person}",
        "a watercolor painting of {person}",
        "a pencil sketch of {person}",
        "{person} as a character in a Pixar-style 3D animation",
        "a pop art portrait of {person}",
    ],
    "emotion": [
        "a close-up photo of {person} laughing",
        "a close-up photo of {person} crying",
        "a close-up photo of {person} looking angry",
        "a close-up photo of {person} looking surprised",
        "a close-up photo of {person} looking thoughtful",
    ],
}


@dataclass(frozen=True)
class SuitePrompt:
    """One prompt of a suite.

    Attributes:
        text: the prompt with one ``{person}`` placeholder.
        asks: the attributes it asks for, for the miniature world's detectors (e.g. ``{"scene": "beach"}``); empty
            when no detector can check it.
    """

    text: str
    asks: dict[str, str] = field(default_factory=dict)

    def fill(self, person: str) -> str:
        """The prompt with ``person`` (a name, "a person", ...) in place of the placeholder."""
        return self.text.replace(PERSON_PLACEHOLDER, person)


@dataclass
class PromptSuite:
    """Tasks → prompts, in order (task order is the table's column order).

    Attributes:
        name: the built-in name or the YAML file it was read from.
        tasks: task → its prompts.
    """

    name: str
    tasks: dict[str, list[SuitePrompt]]

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(problems))

    def problems(self, argument: str = "--suite") -> list[str]:
        """Every problem of the suite: no task, a task without prompts, a prompt without ``{person}``."""
        if not self.tasks:
            return [f"{argument}: the prompt suite {self.name!r} has no task (expected e.g. {', '.join(PAPER_TASKS)})"]
        problems = []
        for task, prompts in self.tasks.items():
            if not prompts:
                problems.append(f"{argument}: task {task!r} of the prompt suite {self.name!r} has no prompt")
            for index, prompt in enumerate(prompts):
                if prompt.text.count(PERSON_PLACEHOLDER) != 1:
                    problems.append(
                        f"{argument}: {task}[{index}] of the prompt suite {self.name!r}: expected one "
                        f"{PERSON_PLACEHOLDER} placeholder, got {prompt.text!r}"
                    )
        return problems

    def __len__(self) -> int:
        return sum(len(prompts) for prompts in self.tasks.values())


def default_suite(name: str) -> PromptSuite:
    """A built-in suite: ``sdxl`` (the paper's four tasks, five prompts each, written for this project) or
    ``miniature`` (one prompt per attribute value of the miniature world: scene, emotion and style; no action)."""
    if name == "sdxl":
        return PromptSuite("sdxl", {task: [SuitePrompt(t) for t in texts] for task, texts in _SDXL_PROMPTS.items()})
    if name == "miniature":
        from namespace.miniature.captions import caption, task_prompts

        tasks: dict[str, list[SuitePrompt]] = {}
        for label, (_, asks) in task_prompts().items():  # "scene: beach" → ("a photo of a person on a beach", …)
            task = label.split(":")[0]
            tasks.setdefault(task, []).append(SuitePrompt(caption(PERSON_PLACEHOLDER, **asks), dict(asks)))
        return PromptSuite("miniature", tasks)
    raise ValueError(f"--suite: expected {' or '.join(BUILT_IN)} or a YAML file, got {name!r}")


def load_suite(path: str | Path, argument: str = "--suite") -> PromptSuite:
    """Reads a suite from YAML (``tasks:`` task → list of prompts, each a string or ``{text, asks}``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: prompt suite file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{argument}: {str(path)!r} is not valid YAML ({error})") from error
    tasks = (data or {}).get("tasks") or {} if isinstance(data, dict | None) else None
    if not isinstance(tasks, dict):
        raise ValueError(f"{argument}: {str(path)!r}: expected 'tasks:' to map each task to a list of prompts")
    parsed: dict[str, list[SuitePrompt]] = {}
    for task, prompts in tasks.items():
        if not isinstance(prompts, list | None):
            raise ValueError(f"{argument}: {str(path)!r}: task {task!r}: expected a list of prompts, got {prompts!r}")
        parsed[str(task)] = [_prompt(item, f"{argument}: {str(path)!r}: {task}[{i}]") for i, item in
                             enumerate(prompts or [])]  # fmt: skip
    return PromptSuite(str(path), parsed)


def _prompt(item: object, where: str) -> SuitePrompt:
    if isinstance(item, str):
        return SuitePrompt(item)
    if isinstance(item, dict) and isinstance(item.get("text"), str) and set(item) <= {"text", "asks"}:
        asks = item.get("asks") or {}
        if isinstance(asks, dict):
            return SuitePrompt(item["text"], {str(k): str(v) for k, v in asks.items()})
    raise ValueError(f"{where}: expected a prompt string or {{text: ..., asks: {{attribute: value}}}}, got {item!r}")


def resolve_suite(suite: str, argument: str = "--suite") -> PromptSuite:
    """A built-in suite by name, or a YAML file."""
    if suite in BUILT_IN:
        return default_suite(suite)
    if Path(suite).suffix.lower() in (".yaml", ".yml") or Path(suite).exists():
        return load_suite(suite, argument)
    raise ValueError(f"{argument}: expected {' or '.join(BUILT_IN)} or a YAML file, got {suite!r}")


__all__ = [
    "PAPER_TASKS",
    "PERSON_PLACEHOLDER",
    "PromptSuite",
    "SuitePrompt",
    "default_suite",
    "load_suite",
    "resolve_suite",
]
