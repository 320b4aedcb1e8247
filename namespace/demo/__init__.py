"""``magicnaming demo``: MagicNaming end to end on the miniature world (or full-size models), with a report.

The demo runs every stage through its own ``magicnaming`` command, in-process, and reads their outputs through the
file formats, so the core imports no stage.
"""

from .run import FULL_SIZE_NOTE, TINY_MODELS_NOTE, demo, main

__all__ = ["FULL_SIZE_NOTE", "TINY_MODELS_NOTE", "demo", "main"]
