"""The app's identity library: identity files in one folder, each with a PNG thumbnail beside it.

``<label>.safetensors`` (the identity file format of ``namespace.Identity``) and ``<label>.png``. Labels are the
placeholder labels of multi-person prompts (``<alice>``), so a library identity can be named in a story.
A saved identity is never replaced: a label already taken gets a number (``alice-2``), claimed atomically.
Memory: nothing is kept; every call reads the folder (identity files are a few KB to 64 KB each).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from namespace import Identity
from namespace.files import atomic_write

from ..placeholders import PLACEHOLDER

THUMBNAIL_SIZE = 128


@dataclass(frozen=True)
class Entry:
    """One saved identity: its label, identity file and thumbnail (None when the PNG is missing)."""

    label: str
    path: Path
    thumbnail: Path | None


class IdentityLibrary:
    """Identity files of one encoder's shape ``(N, D)`` in ``folder``."""

    def __init__(self, folder: Path, shape: tuple[int, int]) -> None:
        self.folder, self.shape = Path(folder), shape

    def entries(self) -> list[Entry]:
        """Every identity file in the folder whose (N, D) is the encoder's, sorted by label."""
        found = []
        for path in sorted(self.folder.glob("*.safetensors"), key=lambda path: path.stem):
            try:
                Identity.load(path, *self.shape)
            except ValueError:  # another encoder's identity, or not an identity file: not usable here
                continue
            thumbnail = path.with_suffix(".png")
            found.append(Entry(path.stem, path, thumbnail if thumbnail.is_file() else None))
        return found

    def labels(self) -> list[str]:
        return [entry.label for entry in self.entries()]

    def load(self, label: str, argument: str = "identity") -> Identity:
        """The identity saved as ``label``; a ValueError names ``argument`` and the labels there are."""
        path = self.folder / f"{label}.safetensors"
        if not label or not path.is_file():
            known = ", ".join(self.labels()) or "none yet (make one in the Identities tab)"
            raise ValueError(f"{argument}: {label!r} is not in the library; saved: {known}")
        identity = Identity.load(path, *self.shape)
        identity.label = label
        return identity

    def save(self, identity: Identity, label: str, thumbnail: Image.Image) -> Path:
        """Writes ``identity`` as ``label``, or as ``label-2``, ``label-3``, ... when that label is taken (nothing is
        replaced), with a thumbnail of ``thumbnail``; returns the identity file (its stem is the label used)."""
        check_label(label)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._save_new(identity, label)
        picture = thumbnail.convert("RGB")
        scale = THUMBNAIL_SIZE / max(picture.size)  # small drawings (16 px) are enlarged with visible pixels
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
        atomic_write(path.with_suffix(".png"), lambda temporary: picture.save(temporary, format="PNG"))
        return path

    def _save_new(self, identity: Identity, label: str) -> Path:
        """Writes the identity under the first free label of ``label``, ``label-2``, ...; the file is written under
        a hidden name, then hard-linked to its label, which never replaces a file: two visitors saving "alice" at
        once keep both."""
        written = self.folder / f".{label}.saving-{uuid.uuid4().hex}"  # not *.safetensors: entries() skips it
        try:
            for number in range(1, 1000):
                identity.label = label if number == 1 else f"{label}-{number}"
                identity.save(written)  # the file's own label is the one it is saved under
                try:
                    os.link(written, self.folder / f"{identity.label}.safetensors")
                except FileExistsError:
                    continue
                return self.folder / f"{identity.label}.safetensors"
        finally:
            written.unlink(missing_ok=True)
        raise ValueError(f"name: {label!r} and its numbered variants up to {label}-999 are all taken")


def taken(asked: str, used: str) -> str:
    """For a status line: `` ('alice' is taken)`` when the library gave the identity another label, else nothing."""
    return "" if asked == used else f" ({asked!r} is taken)"


def check_label(label: str) -> str:
    """A label names the identity in the library and in story prompts (``<label>``)."""
    if not PLACEHOLDER.fullmatch(f"<{label}>"):
        raise ValueError(f"name: expected letters, digits, _ or - starting with a letter (e.g. alice), got {label!r}")
    return label
