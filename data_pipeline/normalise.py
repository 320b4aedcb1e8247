"""The one text normalisation of names and captions: a name matches a caption when both normalise alike.

Unicode NFKC, typographic apostrophes, quotes and hyphens as their ASCII forms (a caption's "Nyong’o" names
"Nyong'o"), every whitespace run as one space. :func:`without_accents` makes the accent-folded aliases of
``names.fold_accents`` ("Beyonce" for "Beyoncé"); captions are never folded.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Applied before NFKC, which would turn ″ into two primes and ´ into a space and a combining accent.
TYPOGRAPHIC = {
    **dict.fromkeys(map(ord, "‘’‛′‵ʹʻʼʽ´"), "'"),
    **dict.fromkeys(map(ord, "“”„‟″‶"), '"'),
    **dict.fromkeys(map(ord, "‐‑"), "-"),
}
# every whitespace character → a plain space, with the typographic forms in one pass
TO_ASCII = {
    **{code: " " for code in range(0x3001) if chr(code).isspace() and code != 32},  # U+3000 is the last one
    **TYPOGRAPHIC,
}
ASCII_SPACES = [chr(code) for code in TO_ASCII if code < 128]
# in text that is not ASCII, str.translate looks every character up in the dict (about 40 ns each); a regex finds the
# rare ones to replace about 4× faster (a 100-character caption: 1 µs instead of 4)
TO_REPLACE = re.compile("[" + "".join(re.escape(chr(code)) for code in TO_ASCII) + "]")
# Latin letters that carry no separable accent in Unicode but lose it in captions all the same
UNACCENTED = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H",
                            "ı": "i", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ð": "d", "Ð": "D",
                            "þ": "th", "Þ": "Th"})  # fmt: skip


def normalise(text: str) -> str:
    """NFKC, typographic punctuation as ASCII, whitespace runs as one space, stripped; case is kept."""
    if not text.isascii():
        text = TO_REPLACE.sub(lambda found: TO_ASCII[ord(found[0])], text)
    elif any(space in text for space in ASCII_SPACES):  # ASCII: only tabs and newlines to translate, if any
        text = text.translate(TO_ASCII)
    text = unicodedata.normalize("NFKC", text)
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip()


def normalise_array(text: pa.LargeStringArray, lower: bool = False) -> pa.LargeStringArray:
    """:func:`normalise` of every value (then ``str.lower`` when ``lower``), in bulk: (n,) → (n,), no nulls.

    A value whose UTF-8 bytes are all printable ASCII, with no two spaces in a row and none at either end, normalises
    to itself: numpy finds those in Arrow's buffers and ``ascii_lower`` folds their case; Python normalises the
    others, a few percent of captions. Memory: about three bytes per byte of text.
    """
    if len(text) == 0:
        return text
    offsets = np.frombuffer(text.buffers()[1], np.int64, len(text) + 1, text.offset * 8)
    start, end = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    data = np.frombuffer(text.buffers()[2], np.uint8, end[-1], offsets[0]) if end[-1] else np.zeros(0, np.uint8)
    space = data == 32
    odd = (data < 32) | (data >= 128)  # any non-ASCII byte and every ASCII whitespace but the space (and controls)
    odd[1:] |= space[1:] & space[:-1]  # the second of two spaces
    filled = np.flatnonzero(end > start)
    changed = np.zeros(len(text), bool)
    if len(filled):
        changed[filled] = np.logical_or.reduceat(odd, start[filled]) | space[start[filled]] | space[end[filled] - 1]
    result = pc.ascii_lower(text) if lower else text
    if changed.any():
        mask = pa.array(changed)
        values = [normalise(value) for value in text.filter(mask).to_pylist()]
        values = [value.lower() for value in values] if lower else values
        result = pc.replace_with_mask(result, mask, pa.array(values, pa.large_string()))
    return result


def without_accents(text: str) -> str:
    """``text`` with the accents of Latin letters removed ("Beyoncé Knowles" → "Beyonce Knowles").

    Only a Latin letter followed by marks of the Combining Diacritical Marks block loses them: other scripts keep
    theirs (Cyrillic й is not и, Japanese が is not か).
    """
    letters = []
    for char in text.translate(UNACCENTED):
        base, *marks = unicodedata.normalize("NFD", char)
        latin = base.isascii() and base.isalpha() and all(0x300 <= ord(mark) <= 0x36F for mark in marks)
        letters.append(base if latin else char)
    return unicodedata.normalize("NFC", "".join(letters))
