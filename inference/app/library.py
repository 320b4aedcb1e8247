"""The app's identity library: identity files in one folder, each with a PNG thumbnail beside it.

``<label>.safetensors`` (the identity file format of ``namespace.Identity``) and ``<label>.png``. Labels are the
placeholder labels of multi-person prompts (``<alice>``), so a library identity can be named in a story.
Memory: nothing is kept; every call reads the folder (identity files are a few KB to 64 KB each).
"""

from __future__ import annotations

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
        for path in sorted(self.folder.glob("*.safetensors")):
            try:
                Identity.load(path, *self.shape)
            except ValueError:  # another encoder's identity, or not an identity file: not usable here
                continue
            thumbnail = path.with_suffix(".png")
            found.append(Entry(path.stem, path, thumbnail if thumbnail.is_file() else None))
        return found

    def labels(self) -> list[str]:
        return [entry.label for entry in self.entries()]

    def load(self, label: str) -> Identity:
        """The identity saved as ``label``; a ValueError names the labels there are."""
        path = self.folder / f"{label}.safetensors"
        if not label or not path.is_file():
            known = ", ".join(self.labels()) or "none yet (make one in the Identities tab)"
            raise ValueError(f"identity: {label!r} is not in the library; saved: {known}")
        identity = Identity.load(path, *self.shape)
        identity.label = label
        return identity

    def save(self, identity: Identity, label: str, thumbnail: Image.Image) -> Path:
        """Writes ``identity`` as ``label`` (replacing one of that label) with a thumbnail of ``thumbnail``."""
        check_label(label)
        identity.label = label
        path = identity.save(self.folder / f"{label}.safetensors")
        picture = thumbnail.convert("RGB")
        scale = THUMBNAIL_SIZE / max(picture.size)  # small drawings (16 px) are enlarged with visible pixels
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
        atomic_write(path.with_suffix(".png"), lambda temporary: picture.save(temporary, format="PNG"))
        return path


def check_label(label: str) -> str:
    """A label names the identity in the library and in story prompts (``<label>``)."""
    if not PLACEHOLDER.fullmatch(f"<{label}>"):
        raise ValueError(f"name: expected letters, digits, _ or - starting with a letter (e.g. alice), got {label!r}")
    return label
