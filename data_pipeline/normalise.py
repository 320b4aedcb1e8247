"""The one text normalisation of names and captions: a name matches a caption when both normalise alike.

Unicode NFKC, typographic apostrophes, quotes and hyphens as their ASCII forms (a caption's "Nyong’o" names
"Nyong'o"), every whitespace run as one space. :func:`without_accents` makes the accent-folded aliases of
``names.fold_accents`` ("Beyonce" for "Beyoncé"); captions are never folded.
"""

from __future__ import annotations

import unicodedata

# Applied before NFKC, which would turn ″ into two primes and ´ into a space and a combining accent.
TYPOGRAPHIC = {
    **dict.fromkeys(map(ord, "‘’‛′‵ʹʻʼʽ´"), "'"),
    **dict.fromkeys(map(ord, "“”„‟″‶"), '"'),
    **dict.fromkeys(map(ord, "‐‑"), "-"),
}
# every whitespace character → a plain space, in the same C-level str.translate (a regex over megabytes is 20× slower)
TO_ASCII = {
    **{code: " " for code in range(0x3001) if chr(code).isspace() and code != 32},  # U+3000 is the last one
    **TYPOGRAPHIC,
}
ASCII_SPACES = [chr(code) for code in TO_ASCII if code < 128]
# Latin letters that carry no separable accent in Unicode but lose it in captions all the same
UNACCENTED = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H",
                            "ı": "i", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ð": "d", "Ð": "D",
                            "þ": "th", "Þ": "Th"})  # fmt: skip


def normalise(text: str) -> str:
    """NFKC, typographic punctuation as ASCII, whitespace runs as one space, stripped; case is kept."""
    if not text.isascii() or any(space in text for space in ASCII_SPACES):  # plain ASCII: nothing to translate
        text = text.translate(TO_ASCII)
    text = unicodedata.normalize("NFKC", text)
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip()


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
