"""Where a build reads and writes: local paths or any fsspec URL (``s3://``, ``gs://``, ``hdfs://``, ...).

Storage options (endpoint, credentials, ...) are the filesystem's own keyword arguments: ``source.storage_options``
for the captions and name lists, ``output_storage_options`` for the output. Beneath them each filesystem reads its
usual environment (s3fs: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``;
gcsfs: ``GOOGLE_APPLICATION_CREDENTIALS``) and fsspec any ``FSSPEC_<PROTOCOL>_<OPTION>`` variable
(``FSSPEC_S3_ENDPOINT_URL``). The manifest records the config, so secrets belong in the environment; what is
recorded or printed (the manifest, the stage logs, error messages) goes through :func:`namespace.redaction.redacted`
anyway: values under secret-like keys at any depth, URLs' userinfo and signed query strings.

The stages work on local files (faiss, img2dataset's incremental mode, memory maps), so a remote output is built
in a local scratch folder (:class:`RemoteOutput`): every finished stage folder is uploaded to ``OUTPUT/work/<stage>/``
with its ``_stage.json`` marker last, and a build resuming on another machine downloads the finished stages from
there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import fsspec
import pyarrow.parquet as pq

from namespace.files import cache_dir
from namespace.laioncele import MANIFEST, manifest_text
from namespace.redaction import redacted_url

MARKER = "_stage.json"  # as data_pipeline.stage_dirs: a stage folder with it is finished


def is_remote(url: str | os.PathLike) -> bool:
    """Whether ``url`` names another filesystem than the local one (a protocol other than ``file``)."""
    protocol, _ = fsspec.core.split_protocol(str(url))
    return protocol not in (None, "file", "local")


def filesystem(url: str, options: dict | None = None):
    """(fsspec filesystem, path inside it) of ``url``."""
    return fsspec.core.url_to_fs(str(url), **(options or {}))


def expand(patterns: list[str], argument: str, options: dict | None = None) -> list[str]:
    """Every file matching each glob pattern, sorted per pattern; remote files as full URLs, local ones as paths.

    Raises FileNotFoundError naming ``argument`` and the pattern when a pattern matches no file.
    """
    files = []
    for pattern in patterns:
        fs, path = filesystem(pattern, options)
        found = sorted(name for name, info in fs.glob(path, detail=True).items() if info["type"] == "file")
        if not found:
            raise FileNotFoundError(f"{argument}: nothing matches {redacted_url(pattern)!r}")
        files += [fs.unstrip_protocol(name) if is_remote(pattern) else name for name in found]
    return files


def check_inputs(urls: list[str], argument: str, options: dict | None = None) -> None:
    """Raises FileNotFoundError naming ``argument`` and the first URL that is not a file (one stat per file)."""
    for url in urls:
        fs, path = filesystem(url, options)
        if not fs.isfile(path):
            raise FileNotFoundError(f"{argument}: {redacted_url(url)!r} does not exist")


def parquet_file(url: str, options: dict | None = None) -> pq.ParquetFile:
    """A parquet file for reading batches; a remote one reads only the footer and the row groups asked for."""
    if not is_remote(url):
        return pq.ParquetFile(url)
    fs, path = filesystem(url, options)
    return pq.ParquetFile(fs.open(path, "rb"))


def open_input(url: str, options: dict | None = None, mode: str = "rb", **kwargs):
    """An open file (context manager) for ``url`` on its filesystem; ``kwargs`` as :func:`open` (encoding, ...)."""
    return fsspec.open(str(url), mode, **(options or {}), **kwargs)


def suffix(url: str) -> str:
    return PurePosixPath(fsspec.core.split_protocol(str(url))[1]).suffix


def file_name(url: str | os.PathLike) -> str:
    """The file name of a path or URL, without a URL's query string (a presigned URL's signature)."""
    if is_remote(url):
        return PurePosixPath(urlsplit(str(url)).path).name
    return os.path.basename(url)


def default_scratch(url: str) -> Path:
    """The local folder a remote output is built in: ``cache_dir("scratch")/<hash of the URL>``."""
    return cache_dir("scratch") / hashlib.sha256(url.encode()).hexdigest()[:16]


class RemoteOutput:
    """A build's output on a remote filesystem, built in a local scratch folder.

    Holds nothing but the URL and a filesystem client: files stream between disk and the store one at a time.
    The scratch folder needs the disk of a local build's ``work/`` (the downloaded shards, the feature cache, ...).

    Args:
        url: the output directory (``s3://bucket/laioncele``).
        options: the filesystem's storage options.
        scratch: the local folder (None: :func:`default_scratch`).
    """

    def __init__(self, url: str, options: dict | None = None, scratch: Path | None = None):
        self.url = url.rstrip("/")
        self.fs, self.root = filesystem(self.url, options)
        self.root = self.root.rstrip("/")
        self.scratch = Path(scratch) if scratch is not None else default_scratch(self.url)

    def _remote(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def finished(self, stage: str) -> bool:
        """Whether ``OUTPUT/work/<stage>`` holds a finished stage (its marker)."""
        return self.fs.isfile(self._remote("work", stage, MARKER))

    def fetch(self, stage: str, work: Path) -> None:
        """Downloads the finished ``OUTPUT/work/<stage>`` into ``work/<stage>`` (whole or not at all), one file at a
        time."""
        target, temporary = Path(work) / stage, Path(work) / f"{stage}.fetching"
        shutil.rmtree(temporary, ignore_errors=True)
        remote = self._remote("work", stage)
        for name in sorted(self.fs.find(remote)):
            local = temporary / PurePosixPath(name).relative_to(remote)
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(name, str(local))
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(Path(work) / f"{stage}.partial", ignore_errors=True)  # this machine's unfinished attempt
        os.replace(temporary, target)

    def upload(self, stage: str, work: Path) -> None:
        """Uploads the finished ``work/<stage>`` to ``OUTPUT/work/<stage>/``, its marker last; what a killed upload
        left there (no marker) is removed first."""
        remote = self._remote("work", stage)
        if self.fs.exists(remote):
            self.fs.rm(remote, recursive=True)
        self._put_folder(Path(work) / stage, remote, last=MARKER)

    def publish(self, folder: Path, manifest: dict) -> bool:
        """Uploads the LaionCele files of ``folder`` (but ``_*`` files) to the output's top, then ``manifest.json``;
        returns False (uploading nothing) when the output already holds this very manifest."""
        manifest_path, text = self._remote(MANIFEST), manifest_text(manifest)
        if self.fs.isfile(manifest_path) and self.fs.cat_file(manifest_path).decode() == text:
            return False
        for path in sorted(Path(folder).iterdir()):
            if path.name.startswith("_"):
                continue
            if path.is_dir():
                if self.fs.exists(self._remote(path.name)):
                    self.fs.rm(self._remote(path.name), recursive=True)
                self._put_folder(path, self._remote(path.name))
            else:
                self._put(path, self._remote(path.name))
        with self.fs.open(manifest_path, "wb") as handle:
            handle.write(text.encode())
        return True

    def remove_work(self) -> None:
        """Removes ``OUTPUT/work`` (``keep_work: false``)."""
        if self.fs.exists(self._remote("work")):
            self.fs.rm(self._remote("work"), recursive=True)

    def _put_folder(self, folder: Path, remote: str, last: str | None = None) -> None:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        files.sort(key=lambda p: last is not None and p == folder / last)  # stable: the marker goes last
        for path in files:
            self._put(path, "/".join([remote, *path.relative_to(folder).parts]))

    def _put(self, path: Path, remote: str) -> None:
        self.fs.put_file(str(path), remote)
