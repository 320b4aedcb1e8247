"""Lightning's own INFO lines (devices found, tips, why ``fit`` stopped) in a log file beside the run.

A person reading the terminal of ``magicnaming train`` wants the training's progress and what went wrong; Lightning's
INFO lines are kept, in ``<default_root_dir>/lightning.log``, and its warnings still reach the terminal.
"""

from __future__ import annotations

import logging
from pathlib import Path

LOGGERS = ("lightning.pytorch", "lightning.fabric")  # where Lightning logs; each may hold its own terminal handler


class _RunLog(logging.FileHandler):
    """The file handler this module adds (so that a second run in the same process replaces, not adds, it)."""


def lightning_info_to(path: Path) -> Path:
    """Sends Lightning's INFO records to ``path`` (appended) and lets only its warnings through to the terminal.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _RunLog(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _RunLog) or type(h) is logging.StreamHandler]:
            logger.removeHandler(old)
            old.close()
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.addHandler(terminal)
        # its records stop here: a root handler (a user's basicConfig, an earlier stage) would print them again
        logger.propagate = False
    return path
