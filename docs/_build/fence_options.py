"""An MkDocs hook: drops pytest-markdown-docs' fence options (``notest``, ``continuation``) before rendering.

The tests read them (tests/test_docs.py); Material's code blocks would not recognise a fence that carries them.
"""

from __future__ import annotations

import re

FENCE_OPTIONS = re.compile(r"^(?P<fence>[ \t]*`{3,}(?:python|py|python3))(?:[ \t]+(?:notest|continuation))+[ \t]*$", re.M)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    return FENCE_OPTIONS.sub(r"\g<fence>", markdown)
