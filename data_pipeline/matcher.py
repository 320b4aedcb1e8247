"""Finding names in captions with one Aho-Corasick automaton (pyahocorasick), on word boundaries.

Speed comes from working on a whole batch at once: the captions are normalised in bulk
(:func:`.normalise.normalise_array`: the names' own normalisation, then case; Python sees only the few captions it
changes), Arrow joins them with a separator into one string, the automaton scans it in C, and numpy resolves the hits
(a few per hundred captions): Python does no work per caption.
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .normalise import normalise, normalise_array

SEPARATOR = "\x00"  # never in a normalised caption, not alphanumeric: a word boundary at every caption's edges
ASCII_ALNUM = np.array([chr(code).isalnum() for code in range(128)])


class NameMatcher:
    """Maps captions to the identities they name.

    Memory: the automaton (about 0.5 KB per two-word name form); a scan holds a few copies of one batch's captions
    (up to 4 bytes per character each) and its hits.

    Args:
        identity_ids: one id per identity.
        surfaces: for each identity, its name and aliases.
        case_sensitive: match case exactly (default: lower-case both sides).
    """

    def __init__(self, identity_ids: Sequence[int], surfaces: Sequence[Sequence[str]], case_sensitive: bool = False):
        self.case_sensitive = case_sensitive
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)  # value: the key's row in the arrays below
        identities, lengths = [], []
        for identity_id, forms in zip(identity_ids, surfaces, strict=True):
            for form in forms:
                key = self._normalise(form)
                if key:
                    self.automaton.add_word(key, len(identities))  # a repeated key: the last identity wins
                    identities.append(int(identity_id))
                    lengths.append(len(key))
        if len(self.automaton) == 0:
            raise ValueError("names: no name to match (the name list is empty)")
        self.automaton.make_automaton()
        self.key_identity = np.array(identities, np.int64)
        self.key_length = np.array(lengths, np.int64)

    def _normalise(self, text: str) -> str:
        text = normalise(text)  # the names stage's function: both sides normalise alike
        return text if self.case_sensitive else text.lower()

    def find(self, captions: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """The people each caption names: distinct (caption index, identity id) pairs, sorted, as two (h,) arrays.

        Whole words only; where names overlap ("Anna Maria Smith" holds "Maria Smith") the longest one wins.

        Args:
            captions: (n,) valid UTF-8 text (string, large_string or binary), no nulls.
        """
        if len(captions) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        text = captions.cast(pa.large_string())
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        keys = normalise_array(text, lower=not self.case_sensitive)
        # One non-ASCII character makes Python store a whole joined batch at 2 or 4 bytes per character, which the
        # automaton then copies: the few non-ASCII captions are joined and scanned apart.
        plain = pc.string_is_ascii(keys).to_numpy(zero_copy_only=False)
        pairs = [np.zeros((0, 2), np.int64)]
        for rows in (np.flatnonzero(plain), np.flatnonzero(~plain)):
            if len(rows) == 0:
                continue
            big, code_points = _joined(keys if len(rows) == len(keys) else keys.take(pa.array(rows)))
            separators = np.flatnonzero(code_points == 0)
            if len(separators) != len(rows) - 1:  # a caption holds the separator itself: a space, before normalising
                return self.find(pc.replace_substring(text, SEPARATOR, " "))
            start, identity = self._occurrences(big, code_points)
            pairs.append(np.stack([rows[np.searchsorted(separators, start)], identity], axis=1))  # hit → its caption
        pairs = np.unique(np.concatenate(pairs), axis=0)  # sorted by caption, then identity
        return pairs[:, 0], pairs[:, 1]

    def identities(self, captions: Sequence[str]) -> dict[int, frozenset[int]]:
        """The identities each caption names, for the captions that name anyone: {caption index: identity ids}."""
        caption, identity = self.find(pa.array(captions, pa.large_string()))
        found: dict[int, set[int]] = {}
        for index, identity_id in zip(caption.tolist(), identity.tolist(), strict=True):
            found.setdefault(index, set()).add(identity_id)
        return {index: frozenset(ids) for index, ids in found.items()}

    def _occurrences(self, big: str, code_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whole-word, longest, non-overlapping names in ``big``: (start offset, identity id), two (h,) arrays."""
        hits = np.array(list(self.automaton.iter(big)), np.int64).reshape(-1, 2)  # (end, key) per hit
        end, key = hits[:, 0], hits[:, 1]
        start = end - self.key_length[key] + 1
        around = np.stack([start - 1, end + 1], axis=1)  # the characters either side of each hit
        inside = (around >= 0) & (around < len(big))
        letters = np.zeros(around.shape, bool)
        letters[inside] = _is_alnum(code_points[around[inside]])
        keep = ~letters.any(axis=1)  # not inside a longer word
        start, end, key = start[keep], end[keep], key[keep]
        order = np.lexsort((start - end, start))  # by start, the longest first
        start, end, key = start[order], end[order], key[order]
        # a hit ending inside an earlier one is a shorter name within it: the running end of all earlier hits equals
        # that of the earlier hits taken (a skipped hit never reaches past it)
        covered = np.concatenate([[-1], np.maximum.accumulate(end)[:-1]])
        taken = end > covered
        return start[taken], self.key_identity[key[taken]]


def _joined(keys: pa.LargeStringArray) -> tuple[str, np.ndarray]:
    """The captions as one string, separated by SEPARATOR, and its (len,) code points."""
    lists = pa.LargeListArray.from_arrays(pa.array([0, len(keys)], pa.int64()), keys)
    big = pc.binary_join(lists, pa.scalar(SEPARATOR, pa.large_string()))[0].as_py()
    return big, _code_points(big)


def _code_points(text: str) -> np.ndarray:
    """(len(text),) the code point of every character."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def _is_alnum(code_points: np.ndarray) -> np.ndarray:
    """str.isalnum of each code point: a table for ASCII, Python for the rare others."""
    result = np.zeros(len(code_points), bool)
    ascii_ = code_points < 128
    result[ascii_] = ASCII_ALNUM[code_points[ascii_]]
    result[~ascii_] = [chr(code).isalnum() for code in code_points[~ascii_].tolist()]
    return result
