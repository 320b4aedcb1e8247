"""How every command's ``--help`` is rendered: docstring markup shown as plain text, types by their names.

Commands are typed functions whose Google-style docstrings become the help (jsonargparse). Docstrings are reST, so
``code`` and :class:`links` would reach the terminal as they are, and jsonargparse shows a bare ``pathlib.Path``
as ``<class 'Path'>``. Every command's parser uses :class:`PlainHelpFormatter` (see
``namespace.command_line.run_command``); LightningCLI's subcommand parsers inherit it.
"""

from __future__ import annotations

import re

from jsonargparse import DefaultHelpFormatter

_LINK = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?")  # `text <target>`_  → text (target)
_ROLE = re.compile(r":[\w.:-]+:`(~?)([^`]+?)`")  # :class:`~a.b.C` → C, :func:`f` → f
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)  # ``code`` → code
_INTERPRETED = re.compile(r"`([^`\s][^`]*)`")  # `text` → text
_CLASS_REPR = re.compile(r"<class '(?:[\w]+\.)*(\w+)'>")  # <class 'pathlib.Path'> → Path


def plain_text(text: str) -> str:
    """reST inline markup and class reprs of ``text`` as plain text."""
    text = _LINK.sub(lambda match: f"{match[1]} ({match[2]})", text)
    text = _ROLE.sub(lambda match: match[2].rsplit(".", 1)[-1] if match[1] else match[2], text)
    text = _LITERAL.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    return _CLASS_REPR.sub(r"\1", text)


class PlainHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter (types, defaults), with descriptions, group titles and argument help as plain
    text."""

    def start_section(self, heading: str | None) -> None:  # argument groups' titles
        super().start_section(heading and plain_text(heading))

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _expand_help(self, action) -> str:
        return plain_text(super()._expand_help(action))
