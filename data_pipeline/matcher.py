"""Finding names in captions with one Aho-Corasick automaton (pyahocorasick), on word boundaries.

Speed comes from working on a whole batch at once: captions are joined with a separator into one string, which is
normalised (:func:`.normalise.normalise`, the names' own normalisation, then case) and scanned by the automaton in
C; Python only touches the rare hits.
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick
import numpy as np

from .normalise import normalise

SEPARATOR = "\x00"  # never in a normalised caption, not alphanumeric: a word boundary at every caption's edges


class NameMatcher:
    """Maps captions to the identities they name.

    Args:
        identity_ids: one id per identity.
        surfaces: for each identity, its name and aliases.
        case_sensitive: match case exactly (default: lower-case both sides).
    """

    def __init__(self, identity_ids: Sequence[int], surfaces: Sequence[Sequence[str]], case_sensitive: bool = False):
        self.case_sensitive = case_sensitive
        self.automaton = ahocorasick.Automaton()
        for identity_id, forms in zip(identity_ids, surfaces, strict=True):
            for form in forms:
                key = self._normalise(form)
                if key:
                    self.automaton.add_word(key, (int(identity_id), len(key)))
        if len(self.automaton) == 0:
            raise ValueError("names: no name to match (the name list is empty)")
        self.automaton.make_automaton()

    def _normalise(self, text: str) -> str:
        text = normalise(text)  # the names stage's function: both sides normalise alike
        return text if self.case_sensitive else text.lower()

    def identities(self, captions: Sequence[str]) -> dict[int, frozenset[int]]:
        """The identities each caption names, for the captions that name anyone: {caption index: identity ids}.

        Whole words only; where names overlap ("Anna Maria Smith" holds "Maria Smith") the longest one wins.
        """
        joined = SEPARATOR.join(captions)
        if joined.count(SEPARATOR) != len(captions) - 1:  # a caption holds the separator itself
            joined = SEPARATOR.join(caption.replace(SEPARATOR, " ") for caption in captions)
        big = self._normalise(joined)
        pieces = big.split(SEPARATOR)
        ends = np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)) + 1)  # one past each
        hits = []  # (start, end, identity)
        for end, (identity, length) in self.automaton.iter(big):
            start = end - length + 1
            if (start > 0 and big[start - 1].isalnum()) or (end + 1 < len(big) and big[end + 1].isalnum()):
                continue  # inside a longer word
            hits.append((start, end, identity))
        hits.sort(key=lambda hit: (hit[0], -(hit[1] - hit[0])))
        found: dict[int, set[int]] = {}
        covered_until = -1
        for start, end, identity in hits:
            if end <= covered_until:
                continue  # a shorter name inside the one just taken
            covered_until = max(covered_until, end)
            found.setdefault(int(np.searchsorted(ends, start, side="right")), set()).add(identity)
        return {index: frozenset(ids) for index, ids in found.items()}
