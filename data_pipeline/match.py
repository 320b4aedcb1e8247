"""Stage 2, match: LAION-style caption parquet → rows whose caption names exactly one known person.

Every row ends in the funnel: filtered (missing URL, too small, low similarity, unsafe, watermarked), caption not
UTF-8, no name, several names, duplicate URL, or matched. Up to ``examples_per_reason`` rejected rows per reason
and file are kept for inspection. Runs over many files with multiprocessing; :mod:`.spark_match` runs the same
batch function on Spark.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from namespace.progress import progress

from .match_batch import MATCH_SCHEMA, match_batch
from .matcher import NameMatcher
from .stage_log import output_to


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


def source_name(path: str) -> str:
    """A caption file as both engines record it: a local file as its absolute path (Spark's ``file:`` URIs too),
    any other URI (``s3a://...``) as it is."""
    if path.startswith("file:"):
        return url2pathname(urlparse(path).path)
    return path if "://" in path else os.path.abspath(path)


def match_file(path: str, matcher: NameMatcher, config: MatchConfig):
    """Matches one parquet file batch by batch."""
    handle = pq.ParquetFile(path)
    check_columns(handle.schema_arrow.names, config.columns, path)
    wanted = [name for name in asdict(config.columns).values() if name is not None]
    tables, counts, examples, first_row, kept_examples = [], {}, [], 0, {}
    source = source_name(path)
    for record_batch in handle.iter_batches(batch_size=config.batch_rows, columns=wanted):
        batch = pa.Table.from_batches([record_batch])
        sources = pa.array([source] * batch.num_rows, pa.string())
        rows = pa.array(np.arange(first_row, first_row + batch.num_rows, dtype=np.int64))
        matched, batch_counts, batch_examples = match_batch(batch, matcher, config, sources, rows)
        first_row += batch.num_rows
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


def _init_worker(names: pa.Table, config: MatchConfig) -> None:
    _WORKER["matcher"], _WORKER["config"] = matcher_from_names(names, config.case_sensitive), config


def _match_in_worker(path: str):
    return match_file(path, _WORKER["matcher"], _WORKER["config"])


def deduplicate_urls(matched: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """One row per URL, chosen by content (not by order, so Spark and multiprocessing agree).

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


def write_matches(
    output: Path, matched: pa.Table, counts: dict[str, int], examples: list[dict], files: list[str]
) -> dict:
    """Deduplicates URLs and writes ``matches.parquet`` and ``rejected_examples.parquet``; returns the funnel."""
    matched, url_counts = deduplicate_urls(matched)
    counts = {**counts, **url_counts, "matched": matched.num_rows}
    pq.write_table(matched, Path(output) / "matches.parquet")
    pq.write_table(pa.Table.from_pylist(examples, schema=EXAMPLE_SCHEMA), Path(output) / "rejected_examples.parquet")
    return {"files": [Path(f).name for f in files], "funnel": counts}


def match_files(files: list[str], names: pa.Table, config: MatchConfig, output: Path) -> dict:
    """Matches every file (``config.processes`` at a time) and writes the stage's outputs."""
    files = [str(Path(f)) for f in files]
    if not files:
        raise ValueError("captions: expected at least one parquet file, got none")
    for path in files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"captions: {path!r} does not exist")
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
            return match_files_spark(spark, files, names, config, output)
    if config.processes > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(config.processes, initializer=_init_worker, initargs=(names, config)) as pool:
            results = list(progress(pool.imap(_match_in_worker, files), total=len(files), desc="match", unit="file"))
    else:
        matcher = matcher_from_names(names, config.case_sensitive)
        results = [match_file(path, matcher, config) for path in progress(files, desc="match", unit="file")]
    matched = pa.concat_tables([r[0] for r in results])
    counts = merge_counts([r[1] for r in results])
    examples = [example for r in results for example in r[2]]
    return write_matches(output, matched, counts, examples, files)
