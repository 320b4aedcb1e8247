"""``magicnaming demo``: MagicNaming end to end on the miniature world (or full-size models), with a report.

The demo sits above the stages: it runs each stage through the stage's own command entry (``main(argv, prog)``),
in-process, records the ``magicnaming`` line that does the same, and reads the stages' results through the readers
their owners export (``namespace.data_pipeline.results``, ``namespace.train.results``, ``namespace.laioncele``).
"""

from .run import FULL_SIZE_NOTE, TINY_MODELS_NOTE, demo, main

__all__ = ["FULL_SIZE_NOTE", "TINY_MODELS_NOTE", "demo", "main"]
