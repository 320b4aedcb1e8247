"""Stories with consistent characters: storyline → editable panels → panels drawn through MagicNaming → pages.

A thin layer over ``MagicNaming`` (no model logic): each character is an identity registered as ``<label>``, each
panel a prompt with placeholders. See ``magicnaming story --help``.
"""

from .commands import StoryFiles, story, write_story
from .config import STYLES, Character, LLMConfig, Panel, Style, check_characters, style_preset
from .drawing import draw_panels, load_identities, styled_prompts
from .llm_parser import parse_with_llm
from .page import layout_pages
from .panels import check_panels, panels_from_yaml, panels_to_yaml, read_panels, write_panels
from .parser import parse_storyline, split_sentences

__all__ = [
    "STYLES",
    "Character",
    "LLMConfig",
    "Panel",
    "StoryFiles",
    "Style",
    "check_characters",
    "check_panels",
    "draw_panels",
    "layout_pages",
    "load_identities",
    "panels_from_yaml",
    "panels_to_yaml",
    "parse_storyline",
    "parse_with_llm",
    "read_panels",
    "split_sentences",
    "story",
    "style_preset",
    "styled_prompts",
    "write_panels",
    "write_story",
]
