"""Stage 3, download: the matched URLs → webdataset shards, with img2dataset.

img2dataset does the work (multiprocessing locally, its pyspark distributor on a cluster) and resumes by itself
(``incremental_mode="incremental"`` skips finished shards). Every URL ends either in a shard or in
``failures.parquet`` with img2dataset's error message: nothing is lost silently. What img2dataset prints goes to
``download.log``; the terminal shows one progress line.

Memory: this module streams (the URL list is copied from the matches, the shard statuses read, one file at a time);
img2dataset itself reads the URL list whole (its url, caption and identity columns: about 150 bytes per URL) to
cut it into shards.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from namespace.files import atomic_write
from namespace.progress import progress

from .stage_log import output_to

FAILURE_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("caption", pa.string()),
        ("identity_id", pa.int32()),
        ("status", pa.string()),
        ("error_message", pa.string()),
    ]
)


@dataclass
class DownloadConfig:
    """img2dataset settings.

    Attributes:
        image_size: images are resized to this side (``resize_mode``), as the towers see 224² crops anyway.
        resize_mode: img2dataset's resize mode (``keep_ratio`` keeps the whole photo).
        processes: download processes.
        threads: download threads per process.
        samples_per_shard: images per webdataset shard.
        timeout: seconds per request.
        retries: retries per URL.
        distributor: ``multiprocessing`` on one machine, ``pyspark`` on a Spark cluster (a session must exist).
        encode_quality: JPEG quality of the stored images.
    """

    image_size: int = 384
    resize_mode: str = "keep_ratio"
    processes: int = 2
    threads: int = 16
    samples_per_shard: int = 10000
    timeout: int = 10
    retries: int = 0
    distributor: str = "multiprocessing"
    encode_quality: int = 95


def download(matches: Path, output: Path, config: DownloadConfig) -> dict:
    """Downloads every URL of ``matches.parquet`` into ``output`` (shards ``00000.tar``, ``00000.parquet`` per-sample
    status, ``00000_stats.json``); writes ``failures.parquet`` and ``download.log`` (img2dataset's own output) and
    returns the counts. The photos' keys follow the row order of ``matches.parquet``."""
    _check_matches(Path(matches))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which phones home
    from img2dataset import download as img2dataset_download

    output = Path(output)
    url_list = output / "url_list.parquet"
    if not url_list.exists():  # the stage may be resuming: keep the list img2dataset started from
        atomic_write(url_list, lambda path: _copy_columns(matches, path, ["url", "caption", "identity_id"]))
    urls = pq.read_metadata(url_list).num_rows
    with output_to(output / "download.log") as terminal, _progress_line(output / "shards", urls, terminal):
        img2dataset_download(
            url_list=str(url_list),
            input_format="parquet",
            url_col="url",
            caption_col="caption",
            save_additional_columns=["identity_id"],
            output_format="webdataset",
            output_folder=str(output / "shards"),
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            resize_only_if_bigger=True,
            processes_count=config.processes,
            thread_count=config.threads,
            number_sample_per_shard=config.samples_per_shard,
            timeout=config.timeout,
            retries=config.retries,
            distributor=config.distributor,
            encode_quality=config.encode_quality,
            incremental_mode="incremental",
            enable_wandb=False,
            disallowed_header_directives=[],
            compute_hash=None,
        )
    return _summarise(output)


def _check_matches(matches: Path) -> None:
    """Raises a ValueError naming ``matches`` unless it is a parquet file with rows (img2dataset would fail later
    with no shard written)."""
    try:
        rows = pq.read_metadata(matches).num_rows
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"download: {str(matches)!r} is not a readable parquet file ({error})") from error
    if rows == 0:
        raise ValueError(
            f"download: {str(matches)!r} holds no rows: no caption named exactly one known person (the match "
            "stage's funnel, in its _stage.json, says where the rows went)"
        )


@contextlib.contextmanager
def _progress_line(shards: Path, urls: int, terminal: TextIO) -> Iterator[None]:
    """One progress line on ``terminal``: the URLs done, from the stats img2dataset writes after each shard."""
    bar = progress(None, total=urls, desc="download", unit="url", file=terminal)
    stop = threading.Event()

    def update() -> None:
        done = 0
        for stats in shards.glob("*_stats.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):  # a stats file being written: next time
                done += json.loads(stats.read_text())["count"]
        bar.update(done - bar.n)

    def watch() -> None:
        while not stop.wait(1.0):
            update()

    watcher = threading.Thread(target=watch, daemon=True)
    if not bar.disable:
        watcher.start()
    try:
        yield
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        if not bar.disable:
            update()
        bar.close()


def _copy_columns(source: Path, target: Path, columns: list[str], batch_rows: int = 65536) -> None:
    """Copies ``columns`` of a parquet file batch by batch. Memory: one batch."""
    handle = pq.ParquetFile(source)
    schema = pa.schema([handle.schema_arrow.field(name) for name in columns])
    with pq.ParquetWriter(target, schema) as writer:
        for batch in handle.iter_batches(batch_size=batch_rows, columns=columns):
            writer.write_batch(batch)


def _summarise(output: Path) -> dict:
    """Counts the shard statuses and writes the failed rows to ``failures.parquet``, one status file at a time.
    Memory: one shard's statuses."""
    urls, failed = 0, 0
    errors: dict[str, int] = {}
    with pq.ParquetWriter(output / "failures.parquet", FAILURE_SCHEMA) as writer:
        for path in sorted(glob.glob(str(output / "shards" / "*.parquet"))):
            table = pq.read_table(path)
            failures = table.filter(pc.not_equal(table["status"], "success"))
            failures = failures.select(FAILURE_SCHEMA.names).cast(FAILURE_SCHEMA)
            writer.write_table(failures)
            urls, failed = urls + table.num_rows, failed + failures.num_rows
            for message in failures["error_message"].to_pylist():
                kind = _error_kind(message or "")
                errors[kind] = errors.get(kind, 0) + 1
    if urls == 0:
        raise RuntimeError(
            f"download: img2dataset wrote no shard status into {output / 'shards'}; "
            f"what it printed is in {output / 'download.log'}"
        )
    summary = {"urls": urls, "downloaded": urls - failed, "failed": failed}
    summary["errors"] = errors
    (output / "download_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _error_kind(message: str) -> str:
    """A short class of img2dataset's error message, for the funnel."""
    lowered = message.lower()
    if "404" in lowered or "not found" in lowered:
        return "http_404"
    if "http" in lowered and any(code in lowered for code in ("403", "410", "500", "502", "503")):
        return "http_error"
    if "timeout" in lowered or "timed out" in lowered:
        return "timeout"
    if "decode" in lowered or "cannot identify" in lowered or "image" in lowered:
        return "not_an_image"
    return "other"


def shard_paths(download_folder: Path) -> list[str]:
    return sorted(glob.glob(str(Path(download_folder) / "shards" / "*.tar")))
