"""Chunks of one stage's work, each committed whole or not at all, so that a killed stage resumes from its last one.

A stage that runs for days (the probe, the features, the face embedding) splits its work into chunks (a download
shard, a batch of names) and commits each into ``STAGE.partial/_chunks/NAME/``: written under a temporary name and
renamed when complete, the stages' own discipline one level down. Opening the store again clears what a killed
process left half-written (and every chunk when the stage's settings changed since they were made); the stage
skips the chunks that are done, merges them all into its final files one chunk at a time, and :meth:`finish`
records the merge (``_chunks.json``: how many chunks, which were resumed) and deletes the chunks.

Memory: the names of the chunks.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from namespace.files import atomic_write

CHUNKS = "_chunks"


class ChunkStore:
    """The committed chunks of one stage's work in ``folder / store``.

    Build it with :meth:`open` in the stage's own process (which clears half-written chunks); worker processes that
    commit chunks beside it construct it directly (they clear nothing another worker is writing).

    Args:
        folder: the stage's partial folder.
        store: the store's folder name inside it (one stage may keep several: ``_chunks``, ``_chunks-face``, ...).
    """

    def __init__(self, folder: str | os.PathLike, store: str = CHUNKS) -> None:
        self.stage_folder, self.name = Path(folder), store
        self.folder = self.stage_folder / store
        self.record = self.stage_folder / f"{store}.json"  # written by finish(): the merge is complete
        self.settings: dict = {}
        self.resumed: list[str] = []
        self.finished = False

    @classmethod
    def open(cls, folder: str | os.PathLike, settings: dict, store: str = CHUNKS) -> ChunkStore:
        """The store of a stage about to run: half-written chunks cleared, stale ones too.

        Args:
            folder: the stage's partial folder.
            settings: what the chunks' content depends on (JSON-able); chunks made with other settings are deleted.
            store: the store's folder name.

        Returns:
            The store; ``finished`` is True when a previous run merged the chunks with these settings (its final
            files are complete), ``resumed`` lists the chunks already done.
        """
        chunks = cls(folder, store)
        settings = chunks.settings = json.loads(json.dumps(settings))  # tuples → lists: compared as read back
        if chunks.record.is_file() and json.loads(chunks.record.read_text())["settings"] == settings:
            chunks.finished = True
            shutil.rmtree(chunks.folder, ignore_errors=True)  # killed between the record and the deletion
            return chunks
        chunks.record.unlink(missing_ok=True)
        recorded = chunks.folder / "_settings.json"
        if chunks.folder.exists() and (not recorded.is_file() or json.loads(recorded.read_text()) != settings):
            shutil.rmtree(chunks.folder)
        chunks.folder.mkdir(parents=True, exist_ok=True)
        if not recorded.is_file():
            text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
            atomic_write(recorded, lambda path: path.write_text(text))
        for entry in chunks.folder.iterdir():
            if entry.name.startswith("."):  # a chunk a killed process was writing
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        chunks.resumed = chunks.done()
        return chunks

    def done(self) -> list[str]:
        """The committed chunks' names, sorted."""
        if not self.folder.is_dir():
            return []
        entries = self.folder.iterdir()
        return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))

    def path(self, chunk: str) -> Path:
        """The folder of a committed chunk."""
        return self.folder / chunk

    @contextmanager
    def commit(self, chunk: str) -> Iterator[Path]:
        """Yields an empty temporary folder to write chunk ``chunk`` into; renames it to the chunk's name when the
        block ends without an error (deletes it otherwise)."""
        if chunk.startswith((".", "_")) or "/" in chunk:
            raise ValueError(f"chunk: expected a plain name not starting with '.' or '_', got {chunk!r}")
        temporary = self.folder / f".{chunk}.tmp-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        try:
            yield temporary
            shutil.rmtree(self.path(chunk), ignore_errors=True)  # a chunk redone by a worker of an earlier run
            os.replace(temporary, self.path(chunk))
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def finish(self, chunks: list[str]) -> dict:
        """Records that the chunks are merged into the stage's files and deletes them; returns the record.

        Call it once the final files are written: a stage killed before it merges again from the chunks.
        """
        record = {"chunks": len(chunks), "resumed": sorted(set(self.resumed) & set(chunks)), "settings": self.settings}
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        atomic_write(self.record, lambda path: path.write_text(text))
        shutil.rmtree(self.folder, ignore_errors=True)
        self.finished = True
        return record
