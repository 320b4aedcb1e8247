"""Reading and writing webdataset tar shards with the standard library: deterministic bytes, no extra dependency."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

from PIL import Image


def read_samples(path: str | Path, decode: bool = True) -> Iterator[dict]:
    """Yields ``{"key", "json", "jpg"}`` per sample of a webdataset tar, in file order (jpg as bytes or RGB image)."""
    current: dict = {}
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            key, _, extension = member.name.partition(".")
            if current and current["key"] != key:
                yield current
                current = {}
            current["key"] = key
            _add_part(current, extension, archive.extractfile(member).read(), decode)
    if current:
        yield current


def read_samples_by_key(path: str | Path, keys: set[str] | None = None, decode: bool = True) -> Iterator[dict]:
    """Like ``read_samples``, in key order rather than file order (img2dataset writes a shard's photos as their
    downloads finish), only the samples of ``keys`` (None: all). Memory: the shard's member list (a few hundred
    bytes per file) and one sample at a time, read by seeking to it."""
    with tarfile.open(path) as archive:
        members: dict[str, list[tarfile.TarInfo]] = {}
        for member in archive:
            key = member.name.partition(".")[0]
            if member.isfile() and (keys is None or key in keys):
                members.setdefault(key, []).append(member)
        for key in sorted(members):
            sample = {"key": key}
            for member in members[key]:
                _add_part(sample, member.name.partition(".")[2], archive.extractfile(member).read(), decode)
            yield sample


def _add_part(sample: dict, extension: str, data: bytes, decode: bool) -> None:
    if extension == "json":
        sample["json"] = json.loads(data)
    elif extension in ("jpg", "jpeg", "png", "webp"):
        sample["jpg"] = Image.open(io.BytesIO(data)).convert("RGB") if decode else data


class ShardWriter:
    """Writes samples into ``{prefix}-{index:06d}.tar`` files of ``per_shard`` samples each; byte-identical for the
    same input (fixed mtime, owner and order)."""

    def __init__(self, folder: str | Path, prefix: str, per_shard: int) -> None:
        self.folder, self.prefix, self.per_shard = Path(folder), prefix, per_shard
        self.count, self.archive, self.paths = 0, None, []

    def write(self, key: str, jpg: bytes, metadata: dict) -> None:
        if self.count % self.per_shard == 0:
            self.close()
            path = self.folder / f"{self.prefix}-{len(self.paths):06d}.tar"
            self.paths.append(path)
            self.archive = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115 (closed in close())
        for extension, data in (("jpg", jpg), ("json", json.dumps(metadata, sort_keys=True).encode())):
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            self.archive.addfile(info, io.BytesIO(data))
        self.count += 1

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
            self.archive = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
