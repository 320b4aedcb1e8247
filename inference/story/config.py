"""What a story is made of: its characters, the style presets, the optional LLM endpoint, and the panels.

Every type holds only serializable values, so ``configs/story/*.yaml`` and the editable panel file round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..placeholders import PLACEHOLDER

PRONOUNS = ("he", "she", "they")

# Caps on one story, checked before anything is drawn (a longer story is several stories): panels from a storyline,
# a panel file and an LLM answer alike; a panel's caption (its sentence) and prompt; the text read to find them.
MAX_PANELS = 100
MAX_SENTENCE_CHARS = 1_000
MAX_PROMPT_CHARS = 1_000
MAX_STORYLINE_CHARS = 100_000
MAX_PANEL_TEXT_CHARS = 500_000  # a panel file, or the panels an LLM answered
# The one place the LLM parser's API key comes from: a config file names the endpoint, never which secret to send.
API_KEY_VARIABLE = "MAGICNAMING_LLM_API_KEY"


@dataclass
class Character:
    """A person of the story.

    Attributes:
        label: the person's placeholder label (``<label>`` in panel prompts): letters, digits, ``_`` or ``-``,
            starting with a letter.
        name: the full name the storyline uses ("Mira Okonkwo"; its first word is the first name); None: the
            storyline names the person by the label only.
        photos: reference photos of the person (files and/or folders, averaged into one identity); or give
            ``identity``.
        identity: an identity file (``magicnaming identity encode`` writes one).
        pronoun: "he", "she" or "they": which pronouns may refer to this person; None: any of them.
    """

    label: str
    name: str | None = None
    photos: list[str] = field(default_factory=list)
    identity: str | None = None
    pronoun: str | None = None

    def names(self) -> list[str]:
        """The words that name this person in a storyline, longest first: full name, first name, label."""
        words = [self.label]
        if self.name:
            words += [self.name, self.name.split()[0]]
        return sorted(set(words), key=len, reverse=True)


@dataclass
class Style:
    """A style preset: a suffix for every panel prompt and a negative prompt."""

    suffix: str
    negative_prompt: str


_NEGATIVE = "blurry, low quality, deformed, extra limbs, watermark, text"
STYLES: dict[str, Style] = {
    "none": Style("", ""),
    "comic": Style("comic book panel, bold ink outlines, flat colors", f"photo, photorealistic, {_NEGATIVE}"),
    "cinematic": Style("cinematic film still, dramatic lighting, shallow depth of field", f"cartoon, {_NEGATIVE}"),
    "watercolor": Style("watercolor painting, soft washes, paper texture", f"photo, 3d render, {_NEGATIVE}"),
    "sketch": Style("pencil sketch, black and white, hatching", f"color, photo, {_NEGATIVE}"),
    "anime": Style("anime style illustration, clean line art", f"photo, photorealistic, {_NEGATIVE}"),
    "photo": Style("a photo, natural light, 35mm", f"painting, drawing, cartoon, {_NEGATIVE}"),
}


def style_preset(style: str | Style, argument: str = "style") -> Style:
    """A preset by name (one of ``STYLES``), or a ``Style`` as given."""
    if isinstance(style, Style):
        return style
    if style not in STYLES:
        raise ValueError(f"{argument}: expected one of {', '.join(STYLES)}, got {style!r}")
    return STYLES[style]


@dataclass
class LLMConfig:
    """An OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``) for the optional LLM parser.

    The API key is read from the environment variable ``MAGICNAMING_LLM_API_KEY`` only (unset: no
    ``Authorization`` header; local servers need none): a config file chooses the endpoint, never the secret.

    Attributes:
        base_url: the API root: ``https://...``, or ``http://`` to this machine only (``http://127.0.0.1:8000/v1``).
        model: the model name the endpoint serves.
        temperature: sampling temperature (0: as repeatable as the endpoint allows).
        timeout: seconds for the whole request: connecting, sending and reading the complete answer.
    """

    base_url: str
    model: str
    temperature: float = 0.0
    timeout: float = 120.0


@dataclass
class Panel:
    """One panel of the story, as the editable panel file holds it.

    Attributes:
        sentence: the story text of the panel: the caption under it.
        prompt: what is drawn, with a ``<label>`` placeholder for each person in it.
        people: the labels of the people in the panel (the prompt's placeholders, in order).
        seed: the panel's noise seed; None: the story's seed + the panel's index.
    """

    sentence: str
    prompt: str
    people: list[str] = field(default_factory=list)
    seed: int | None = None


def check_characters(characters: list[Character], argument: str = "characters") -> None:
    """Raises one ``ValueError`` listing every problem of the characters (labels, photos, identity files), naming
    each as ``characters[i].field``; reads no image (only whether the files exist)."""
    problems = []
    if not characters:
        problems.append(f"{argument}: expected at least one character, got none")
    seen: dict[str, int] = {}
    for i, person in enumerate(characters):
        at = f"{argument}[{i}]"
        if not isinstance(person.label, str) or not PLACEHOLDER.fullmatch(f"<{person.label}>"):
            problems.append(f"{at}.label: expected letters, digits, '_' or '-' starting with a letter, "
                            f"got {person.label!r}")  # fmt: skip
        elif person.label.lower() in seen:
            problems.append(
                f"{at}.label: {person.label!r} is already the label of {argument}[{seen[person.label.lower()]}]"
            )
        else:
            seen[person.label.lower()] = i
        if person.pronoun is not None and person.pronoun not in PRONOUNS:
            problems.append(f"{at}.pronoun: expected one of {', '.join(PRONOUNS)} or null, got {person.pronoun!r}")
        if person.name is not None and not person.name.strip():
            problems.append(f"{at}.name: expected a name or null, got an empty string")
        photos = [person.photos] if isinstance(person.photos, str) else list(person.photos or [])
        if not photos and person.identity is None:
            problems.append(f"{at}.photos: expected reference photos (files or folders) or {at}.identity (an "
                            f"identity file) for {person.label!r}, found neither")  # fmt: skip
        elif photos and person.identity is not None:
            problems.append(f"{at}: expected photos or an identity file for {person.label!r}, found both")
        for j, photo in enumerate(photos):
            if not Path(photo).exists():
                problems.append(f"{at}.photos[{j}]: {photo!r} does not exist")
        if person.identity is not None and not Path(person.identity).is_file():
            problems.append(f"{at}.identity: identity file {person.identity!r} does not exist")
    raise_problems(problems)


def raise_problems(problems: list[str]) -> None:
    """Raises one ``ValueError`` listing every problem (none: returns)."""
    if problems:
        raise ValueError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        )
