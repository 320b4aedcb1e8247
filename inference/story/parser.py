"""The built-in storyline parser: one panel per sentence, the people in it as ``<label>`` placeholders. No network.

Rules (simple on purpose; the LLM parser, or an edited panel file, handles what they miss):
- Sentences end at ``.``, ``!``, ``?`` or a blank line; abbreviations such as "Dr." are not recognised.
- A person is named by the full name or the first name (as written in ``Character.name``, case-sensitive), or by the
  label (any case), or by an explicit ``<label>``; a name becomes ``<label>``.
- A pronoun (he/him/his/himself, she/her/hers/herself, they/them/their/theirs/themselves) means the last person
  mentioned whose ``pronoun`` matches (or is unset). "they" means several people when no character's pronoun is
  "they" and the sentence so far, or else the previous sentence, named two or more: "<a> and <b>".
- A pronoun for someone already in the sentence stays as written ("<mira> picked up her bag"); otherwise it becomes
  the placeholder, possessives with ``'s`` ("Her dog barked" → "<mira>'s dog barked"; "her" counts as a possessive
  unless an article, a preposition, a conjunction or punctuation follows it). A pronoun with no matching person
  before it stays as written: it may mean someone who is not a character.

Caps (``config``), checked before any sentence is parsed: a storyline of at most ``MAX_STORYLINE_CHARS`` characters,
at most ``MAX_PANELS`` sentences, each of at most ``MAX_SENTENCE_CHARS`` characters.
"""

from __future__ import annotations

import re

from .config import MAX_PANELS, MAX_SENTENCE_CHARS, MAX_STORYLINE_CHARS, Character, Panel, raise_problems

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")
PRONOUN_KIND = {
    **dict.fromkeys(("he", "him", "his", "himself"), "he"),
    **dict.fromkeys(("she", "her", "hers", "herself"), "she"),
    **dict.fromkeys(("they", "them", "their", "theirs", "themselves"), "they"),
}
POSSESSIVE = {"his", "hers", "their", "theirs"}
# after these words "her" is an object ("gave her a book", "looked at her and ..."), before others a possessive
OBJECT_FOLLOWERS = {
    *("a", "an", "the", "to", "at", "in", "on", "with", "and", "or", "but", "for", "from", "of", "by", "as", "into"),
    *("onto", "over", "under", "about", "again", "back", "up", "down", "out", "away", "off", "too", "then", "there"),
    *("here", "that", "this", "so"),
}


def split_sentences(storyline: str) -> list[str]:
    """The storyline's sentences, stripped; pieces without a letter or a digit are dropped."""
    pieces = SENTENCE_END.split(storyline.strip())
    return [" ".join(piece.split()) for piece in pieces if re.search(r"\w", piece)]


def storyline_sentences(storyline: str, argument: str = "storyline") -> list[str]:
    """The storyline's sentences, checked against the caps (module doc) before any is parsed.

    Raises:
        ValueError: naming ``argument``: no sentence, a storyline, a sentence or a count of sentences over its cap.
    """
    if not isinstance(storyline, str):
        raise ValueError(f"{argument}: expected text, got {type(storyline).__name__}")
    if len(storyline) > MAX_STORYLINE_CHARS:
        raise ValueError(f"{argument}: expected text of at most {MAX_STORYLINE_CHARS} characters, got {len(storyline)}")
    sentences = split_sentences(storyline)
    if not sentences:
        raise ValueError(f"{argument}: expected at least one sentence, got {storyline[:60]!r}")
    if len(sentences) > MAX_PANELS:
        raise ValueError(f"{argument}: expected at most {MAX_PANELS} sentences (a panel each: the limit of one story; "
                         f"split it into several), got {len(sentences)}")  # fmt: skip
    raise_problems([
        f"{argument}: sentence {number} ({sentence[:40]!r}…) has {len(sentence)} characters, expected at most "
        f"{MAX_SENTENCE_CHARS} (a sentence is a panel's caption)"
        for number, sentence in enumerate(sentences, 1)
        if len(sentence) > MAX_SENTENCE_CHARS
    ])  # fmt: skip
    return sentences


def _mention_pattern(characters: list[Character]) -> tuple[re.Pattern, dict[str, str]]:
    """One pattern for placeholders, names and pronouns, and the map from a name (or lowercased label) to a label."""
    lookup: dict[str, str] = {}
    names: list[str] = []
    for person in characters:
        for word in person.names():
            key = word.lower() if word == person.label else word
            lookup.setdefault(key, person.label)  # a first name two people share means the first of them
            names.append(f"(?i:{re.escape(word)})" if word == person.label else re.escape(word))
    names.sort(key=len, reverse=True)
    alternatives = [r"(?P<placeholder><[A-Za-z][\w-]*>)"]
    if names:
        alternatives.append(r"(?P<name>(?<![\w<])(?:" + "|".join(names) + r")(?![\w>]))")
    alternatives.append(r"(?P<pronoun>\b(?i:" + "|".join(PRONOUN_KIND) + r")\b)")
    return re.compile("|".join(alternatives)), lookup


class _Resolver:
    """Which character a pronoun means: the mentions so far, most recent last."""

    def __init__(self, characters: list[Character]) -> None:
        self.pronoun = {person.label: person.pronoun for person in characters}
        self.singular_they = any(person.pronoun == "they" for person in characters)
        self.mentioned: list[str] = []
        self.previous_sentence: list[str] = []

    def mention(self, label: str) -> None:
        if label in self.mentioned:
            self.mentioned.remove(label)
        self.mentioned.append(label)

    def resolve(self, kind: str, sentence_so_far: list[str]) -> list[str]:
        if kind == "they" and not self.singular_they:
            for group in (sentence_so_far, self.previous_sentence):
                if len(set(group)) >= 2:
                    return list(dict.fromkeys(group))
        for label in reversed(self.mentioned):
            if self.pronoun[label] in (kind, None):
                return [label]
        return []


def _is_possessive(word: str, after: str) -> bool:
    lower = word.lower()
    if lower in POSSESSIVE:
        return True
    if lower != "her":
        return False
    following = re.match(r"\s*([A-Za-z]+)", after)
    return following is not None and following.group(1).lower() not in OBJECT_FOLLOWERS


def parse_storyline(storyline: str, characters: list[Character]) -> list[Panel]:
    """Splits a storyline into panels, one per sentence, each person a ``<label>`` placeholder (rules: module doc).

    Args:
        storyline: free text.
        characters: the story's people (only labels, names and pronouns are read here).

    Returns:
        one ``Panel`` per sentence: the sentence (the caption), the prompt with placeholders and the panel's people.

    Raises:
        ValueError: a storyline with no sentence, over a cap (module doc), or a ``<label>`` that is no character's.
    """
    sentences = storyline_sentences(storyline)
    pattern, lookup = _mention_pattern(characters)
    labels = {person.label for person in characters}
    resolver, panels, unknown = _Resolver(characters), [], []
    for number, sentence in enumerate(sentences):
        people: list[str] = []
        pieces, cursor = [], 0
        for match in pattern.finditer(sentence):
            text, replacement = match.group(0), None
            if match.group("placeholder"):
                label = text[1:-1]
                if label not in labels:
                    unknown.append(f"sentence {number + 1} ({sentence!r}) names <{label}>")
                    continue
                found = [label]
            elif match.group("name"):
                found = [lookup.get(text, lookup.get(text.lower()))]
            else:
                found = resolver.resolve(PRONOUN_KIND[text.lower()], people)
                if not found or all(label in people for label in found):
                    for label in found:
                        resolver.mention(label)
                    continue  # nobody to refer to, or everyone already placed: the pronoun reads as written
                suffix = "'s" if _is_possessive(text, sentence[match.end() :]) else ""
                replacement = " and ".join(f"<{label}>" for label in found) + suffix
            pieces += [sentence[cursor : match.start()], replacement or " and ".join(f"<{f}>" for f in found)]
            cursor = match.end()
            for label in found:
                people.append(label)
                resolver.mention(label)
        pieces.append(sentence[cursor:])
        prompt = "".join(pieces).strip().rstrip(".!?").strip()
        panels.append(Panel(sentence=sentence, prompt=prompt, people=list(dict.fromkeys(people))))
        resolver.previous_sentence = people
    if unknown:
        known = ", ".join(f"<{label}>" for label in sorted(labels)) or "none"
        raise ValueError(f"storyline: {'; '.join(unknown)}, which is no character's label (characters: {known})")
    return panels


__all__ = ["parse_storyline", "split_sentences", "storyline_sentences"]
