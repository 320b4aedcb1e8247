"""Stage 2, match: LAION-style caption parquet → rows whose caption names exactly one known person.

Every row ends in the funnel: filtered (missing URL, too small, low similarity, unsafe, watermarked), caption not
UTF-8, no name, several names, duplicate URL, or matched. Up to ``examples_per_reason`` rejected rows per reason
and file are kept for inspection. Runs over many files with multiprocessing; :mod:`.spark_match` runs the same
batch function on Spark. Caption files may live on any fsspec filesystem (:mod:`.storage`).

Bounded memory: matched rows go to bucket files on disk by a hash of their URL (``match.url_buckets``), then
each bucket is deduplicated on its own and the buckets are merged into ``matches.parquet`` in URL order (whatever
``url_buckets`` is); both engines write the same bytes (the download numbers photos by row order).
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import shutil
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from namespace.progress import progress

from .match_batch import MATCH_SCHEMA, match_batch
from .matcher import NameMatcher
from .stage_log import output_to
from .storage import check_inputs, file_name, is_remote, parquet_file

ROWS_PER_GROUP = 65536  # the row groups of matches.parquet and rejected_examples.parquet, whichever engine


@dataclass
class CaptionColumns:
    """Column names of the caption parquet (LAION's by default); None skips the column's filter."""

    url: str = "URL"
    text: str = "TEXT"
    width: str | None = "WIDTH"
    height: str | None = "HEIGHT"
    similarity: str | None = "similarity"
    punsafe: str | None = "punsafe"
    pwatermark: str | None = "pwatermark"


@dataclass
class MatchConfig:
    """Filters and matching options.

    Attributes:
        columns: the caption parquet's column names.
        min_width: smallest accepted image width (pixels).
        min_height: smallest accepted image height.
        min_similarity: smallest accepted caption–image CLIP similarity (LAION's column).
        max_punsafe: largest accepted NSFW probability.
        max_pwatermark: largest accepted watermark probability.
        case_sensitive: match names with their case.
        batch_rows: rows read and matched at once.
        processes: worker processes (one file at a time each), for the multiprocessing engine.
        examples_per_reason: rejected rows kept per reason and file.
        engine: ``multiprocessing`` on one machine, ``spark`` on a Spark cluster (the same batch function).
        spark_master: the Spark master for the spark engine (None: the session ``spark-submit`` set up).
        url_buckets: matched rows are spread over this many buckets by a hash of their URL and deduplicated one
            bucket at a time: the stage holds about (matched rows / url_buckets) rows at once.
    """

    columns: CaptionColumns = field(default_factory=CaptionColumns)
    min_width: int = 256
    min_height: int = 256
    min_similarity: float = 0.28
    max_punsafe: float = 0.5
    max_pwatermark: float = 0.8
    case_sensitive: bool = False
    batch_rows: int = 65536
    processes: int = 1
    examples_per_reason: int = 20
    engine: Literal["multiprocessing", "spark"] = "multiprocessing"
    spark_master: str | None = None
    url_buckets: int = 64


EXAMPLE_SCHEMA = pa.schema(
    [("source", pa.string()), ("row", pa.int64()), ("reason", pa.string()), ("caption", pa.string())]
)


def check_columns(found: list[str], columns: CaptionColumns, source: str) -> None:
    required = [name for name in asdict(columns).values() if name is not None]
    missing = [name for name in required if name not in found]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing} (configured in match.columns); the file has {found}. "
            "Set a column to null to skip its filter."
        )


def check_caption_files(files: list[str], columns: CaptionColumns, options: dict | None = None) -> None:
    """Reads each caption file's footer before any matching; raises one ValueError naming every file that is not a
    readable parquet file, holds no rows, or lacks a configured column (an empty file would only fail inside
    img2dataset, stages later)."""
    problems = []
    for url in files:
        try:
            with parquet_file(url, options) as handle:
                rows, found = handle.metadata.num_rows, handle.schema_arrow.names
        except (pa.ArrowException, OSError, ValueError) as error:
            problems.append(f"{url!r} is not a readable parquet file ({error})")
            continue
        if rows == 0:
            problems.append(f"{url!r} holds no rows (expected caption rows)")
        try:
            check_columns(found, columns, repr(url))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError("captions: " + "; ".join(problems))


def source_name(path: str) -> str:
    """A caption file as both engines record it: a local file as its absolute path (a ``file:`` URI too), any
    other URL (``s3://...``) as it is."""
    if path.startswith("file:"):
        return url2pathname(urlparse(path).path)
    return path if "://" in path else os.path.abspath(path)


def row_groups(handle: pq.ParquetFile) -> list[tuple[int, int]]:
    """(row group, index of its first row in the file) of every row group of a parquet file."""
    sizes = [handle.metadata.row_group(index).num_rows for index in range(handle.num_row_groups)]
    return list(zip(range(len(sizes)), np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))


def match_batches(url: str, matcher: NameMatcher, config: MatchConfig, options: dict | None = None, units=None):
    """Yields (matched rows, counts, rejected examples) for each batch of one caption file, as :func:`match_batch`.

    Args:
        url: the caption file (a local path or an fsspec URL).
        matcher: the names to find.
        config: the filters and the batch size.
        options: the filesystem's storage options.
        units: the row groups to read, as (row group, index of its first row in the file) pairs; None: all of them.

    Memory: one batch of ``config.batch_rows`` rows (a remote file is read row group by row group).
    """
    handle = parquet_file(url, options)
    check_columns(handle.schema_arrow.names, config.columns, url)
    wanted = [name for name in asdict(config.columns).values() if name is not None]
    source = source_name(url)
    for row_group, first_row in row_groups(handle) if units is None else units:
        for record_batch in handle.iter_batches(batch_size=config.batch_rows, row_groups=[row_group], columns=wanted):
            batch = pa.Table.from_batches([record_batch])
            sources = pa.array([source] * batch.num_rows, pa.string())
            rows = pa.array(np.arange(first_row, first_row + batch.num_rows, dtype=np.int64))
            first_row += batch.num_rows
            yield match_batch(batch, matcher, config, sources, rows)


def match_file(path: str, matcher: NameMatcher, config: MatchConfig, options: dict | None = None):
    """Matches one parquet file batch by batch; returns (its matched rows, counts, its first
    ``examples_per_reason`` rejected rows per reason). Memory: the file's matched rows (a small share of its rows)."""
    tables, counts, examples, kept_examples = [], {}, [], {}
    for matched, batch_counts, batch_examples in match_batches(path, matcher, config, options):
        tables.append(matched)
        for reason, count in batch_counts.items():
            counts[reason] = counts.get(reason, 0) + count
        for example in batch_examples:
            reason = example["reason"]
            if kept_examples.get(reason, 0) < config.examples_per_reason:
                kept_examples[reason] = kept_examples.get(reason, 0) + 1
                examples.append(example)
    matched = pa.concat_tables(tables) if tables else MATCH_SCHEMA.empty_table()
    return matched, counts, examples


def matcher_from_names(names: pa.Table, case_sensitive: bool) -> NameMatcher:
    surfaces = [
        [name, *aliases] for name, aliases in zip(names["name"].to_pylist(), names["aliases"].to_pylist(), strict=True)
    ]
    return NameMatcher(names["identity_id"].to_pylist(), surfaces, case_sensitive)


_WORKER: dict = {}


def _init_worker(names: pa.Table, config: MatchConfig, options: dict | None) -> None:
    _WORKER["matcher"], _WORKER["config"] = matcher_from_names(names, config.case_sensitive), config
    _WORKER["options"] = options


def _match_in_worker(path: str):
    return match_file(path, _WORKER["matcher"], _WORKER["config"], _WORKER["options"])


def url_bucket(urls: list[str], buckets: int) -> list[int]:
    """Each URL's bucket: CRC-32 of its UTF-8 bytes modulo ``buckets`` (all rows of one URL meet in one bucket)."""
    return [zlib.crc32(url.encode("utf-8")) % buckets for url in urls]


def deduplicate_urls(matched: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """One row per URL, chosen by content (not by order, so Spark and multiprocessing agree), sorted by URL.

    Returns the kept rows and the funnel counts: ``duplicate_url`` (further rows of a URL naming the same person;
    the row with the smallest caption is kept) and ``url_names_several_people`` (every row of a URL whose captions
    name different people: which one the photo shows is unknown).
    """
    counts = {"duplicate_url": 0, "url_names_several_people": 0}
    if matched.num_rows == 0:
        return matched, counts
    order = [("url", "ascending"), ("caption", "ascending"), ("source", "ascending"), ("row", "ascending")]
    ordered = matched.sort_by(order)
    urls, identities = ordered["url"].to_pylist(), ordered["identity_id"].to_pylist()
    keep, index = [], 0
    while index < len(urls):
        end = index
        while end + 1 < len(urls) and urls[end + 1] == urls[index]:
            end += 1
        if len(set(identities[index : end + 1])) == 1:
            keep.append(index)
            counts["duplicate_url"] += end - index
        else:
            counts["url_names_several_people"] += end - index + 1
        index = end + 1
    return ordered.take(pa.array(keep, pa.int64())), counts


def merge_counts(all_counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in all_counts:
        for reason, count in counts.items():
            total[reason] = total.get(reason, 0) + count
    return total


class RowGroupWriter:
    """One parquet file written in row groups of exactly ``rows_per_group`` rows (the last one shorter) however the
    rows arrive, so that both engines write the same bytes. Holds fewer than ``rows_per_group`` rows plus the table
    being written."""

    def __init__(self, path: Path, schema: pa.Schema, rows_per_group: int = ROWS_PER_GROUP):
        self.writer, self.schema, self.rows_per_group = pq.ParquetWriter(path, schema), schema, rows_per_group
        self.pending, self.rows = schema.empty_table(), 0

    def write(self, table: pa.Table) -> None:
        self.pending = pa.concat_tables([self.pending, table.cast(self.schema)])
        while self.pending.num_rows >= self.rows_per_group:
            self._flush(self.rows_per_group)

    def _flush(self, rows: int) -> None:
        self.writer.write_table(self.pending.slice(0, rows).combine_chunks(), row_group_size=rows)
        self.pending, self.rows = self.pending.slice(rows), self.rows + rows

    def close(self) -> int:
        """Writes the last rows and the footer; returns the rows written."""
        if self.pending.num_rows:
            self._flush(self.pending.num_rows)
        self.writer.close()
        return self.rows

    def __enter__(self) -> RowGroupWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Buckets:
    """Matched rows appended to ``url_buckets`` parquet files by :func:`url_bucket` (one row group per file and
    bucket). Holds the open writers only."""

    def __init__(self, folder: Path, buckets: int):
        self.folder, self.buckets, self.writers = Path(folder), buckets, {}
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, bucket: int) -> Path:
        return self.folder / f"bucket-{bucket:05d}.parquet"

    def write(self, matched: pa.Table) -> None:
        ids = pa.array(url_bucket(matched["url"].to_pylist(), self.buckets), pa.int32())
        for bucket in sorted(set(ids.to_pylist())):
            if bucket not in self.writers:
                self.writers[bucket] = pq.ParquetWriter(self.path(bucket), MATCH_SCHEMA)
            self.writers[bucket].write_table(matched.filter(pc.equal(ids, bucket)))

    def close(self) -> list[Path]:
        """Closes every writer; returns the bucket files in bucket order."""
        for writer in self.writers.values():
            writer.close()
        return [self.path(bucket) for bucket in sorted(self.writers)]


def write_deduplicated(buckets: list[Path], output: Path) -> dict[str, int]:
    """Deduplicates bucket file by bucket file (each then rewritten sorted by URL), then merges the buckets into
    ``output/matches.parquet`` in URL order, whatever ``url_buckets`` is; returns the funnel's URL counts and
    ``matched``. Memory: one bucket (about matched rows / ``url_buckets``), then ``MERGE_BATCH_ROWS`` rows per bucket
    and one output row group."""
    counts = {"duplicate_url": 0, "url_names_several_people": 0}
    for path in buckets:
        kept, bucket_counts = deduplicate_urls(pq.read_table(path))  # sorted by URL
        counts = merge_counts([counts, bucket_counts])
        pq.write_table(kept, path)
    with RowGroupWriter(Path(output) / "matches.parquet", MATCH_SCHEMA) as writer:
        chunk: list[tuple[pa.Table, int]] = []
        for _, _, position, table in heapq.merge(*(_sorted_rows(i, path) for i, path in enumerate(buckets))):
            chunk.append((table, position))
            if len(chunk) == ROWS_PER_GROUP:
                writer.write(_gather(chunk))
                chunk = []
        if chunk:
            writer.write(_gather(chunk))
    return {**counts, "matched": writer.rows}


MERGE_BATCH_ROWS = 4096  # rows read at once from each bucket by the merge: url_buckets × this many rows held


def _sorted_rows(run: int, path: Path):
    """(url, run, position, batch table) for every row of a bucket file sorted by URL, one batch read at a time (a URL
    is in one bucket only: the merge never compares two tables)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=MERGE_BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        for position, url in enumerate(table["url"].to_pylist()):
            yield url, run, position, table


def _gather(chunk: list[tuple[pa.Table, int]]) -> pa.Table:
    """The rows ``chunk`` names (a batch table and a row of it each), in that order: one take per batch table, then
    one take of their concatenation into the merged order."""
    rows: dict[int, tuple[pa.Table, list[int]]] = {}
    for table, position in chunk:
        rows.setdefault(id(table), (table, []))[1].append(position)
    start, parts = {}, []
    for key, (table, positions) in rows.items():
        start[key] = sum(len(part) for part in parts)
        parts.append(table.take(pa.array(positions, pa.int64())))
    taken = dict.fromkeys(rows, 0)
    order = []
    for table, _ in chunk:  # a batch's rows come in the order they were taken
        order.append(start[id(table)] + taken[id(table)])
        taken[id(table)] += 1
    return pa.concat_tables(parts).take(pa.array(order, pa.int64()))


def match_files(
    files: list[str], names: pa.Table, config: MatchConfig, output: Path, storage_options: dict | None = None
) -> dict:
    """Matches every file (``config.processes`` at a time, or on Spark) and writes the stage's outputs:
    ``matches.parquet`` (one row per URL, in URL order) and ``rejected_examples.parquet``.

    Memory (the parent): one file's matched rows and examples at a time, appended to bucket files on disk; then one
    bucket's rows at a time (:func:`write_deduplicated`). Each worker: one batch and its file's matched rows.

    Args:
        files: caption parquet files (local paths or fsspec URLs).
        names: the names stage's table.
        config: the filters and the engine.
        output: the stage's folder.
        storage_options: the captions' filesystem options.
    """
    files = [str(f) if is_remote(f) else str(Path(f)) for f in files]
    if not files:
        raise ValueError("captions: expected at least one parquet file, got none")
    check_inputs(files, "captions", storage_options)
    check_caption_files(files, config.columns, storage_options)
    if config.url_buckets < 1:
        raise ValueError(f"match.url_buckets: expected at least 1, got {config.url_buckets}")
    if config.engine == "spark":
        from pyspark.sql import SparkSession

        # local workers must run this interpreter (with pyarrow and this package); a cluster's setting is kept
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

        from .spark_match import match_files_spark

        # Spark's log goes to the stage's log file, the JVM's with it when it starts here (it keeps that file)
        with output_to(Path(output) / "match.log"):
            builder = SparkSession.builder.appName("magicnaming-match")
            builder = builder.config("spark.ui.showConsoleProgress", "false")  # the build prints its own steps
            spark = (builder.master(config.spark_master) if config.spark_master else builder).getOrCreate()
            return match_files_spark(spark, files, names, config, output, storage_options)
    with contextlib.ExitStack() as stack:
        if config.processes > 1:
            context = multiprocessing.get_context("spawn")
            initargs = (names, config, storage_options)
            pool = stack.enter_context(context.Pool(config.processes, initializer=_init_worker, initargs=initargs))
            results = pool.imap(_match_in_worker, files)
        else:
            matcher = matcher_from_names(names, config.case_sensitive)
            results = (match_file(path, matcher, config, storage_options) for path in files)
        buckets = _Buckets(Path(output) / "buckets", config.url_buckets)
        counts: dict[str, int] = {}
        with RowGroupWriter(Path(output) / "rejected_examples.parquet", EXAMPLE_SCHEMA) as examples:
            for matched, file_counts, file_examples in progress(results, total=len(files), desc="match", unit="file"):
                buckets.write(matched)
                counts = merge_counts([counts, file_counts])
                examples.write(pa.Table.from_pylist(file_examples, schema=EXAMPLE_SCHEMA))
        bucket_files = buckets.close()
    counts.update(write_deduplicated(bucket_files, output))
    shutil.rmtree(Path(output) / "buckets")  # scratch: the stage folder keeps its outputs only
    return {"files": [file_name(f) for f in files], "funnel": counts}  # no presigned query
