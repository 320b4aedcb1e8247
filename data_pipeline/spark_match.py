"""The match stage on Spark, for LAION scale: the caption files' row groups are the work units, each read in a
Python worker through fsspec (so any fsspec filesystem works, ``s3://`` without Hadoop's s3a connector) and matched
by the same generator as the multiprocessing engine (:func:`.match.match_batches`); the URL deduplication is a
window per URL, and the driver streams the kept rows, sorted by URL, into ``matches.parquet``.

Each row's provenance is the multiprocessing engine's: ``source`` (:func:`.match.source_name` of the file) and
``row`` (the row's index in its file: the unit's first row plus its offset). Both engines write the same bytes.

    spark = SparkSession.builder.master("spark://...").getOrCreate()
    match_files_spark(spark, ["s3://laion/part-00000.parquet"], names, MatchConfig(), output, {"anon": False})
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from .match import (
    EXAMPLE_SCHEMA,
    CaptionColumns,
    MatchConfig,
    RowGroupWriter,
    check_columns,
    match_batches,
    matcher_from_names,
    row_groups,
)
from .match_batch import MATCH_SCHEMA
from .storage import file_name, parquet_file

# one output schema for everything a unit reports: matched rows (reason ""), counts, and rejected examples
REPORT_SCHEMA = pa.schema([*MATCH_SCHEMA, ("file", pa.int64()), ("reason", pa.string()), ("count", pa.int64())])
UNIT_SCHEMA = pa.schema([("file", pa.int64()), ("url", pa.string()), ("row_group", pa.int64()), ("first", pa.int64())])


def row_group_units(files: list[str], config: MatchConfig, options: dict | None) -> list[tuple[int, str, int, int]]:
    """(file index, file, row group, index of its first row) of every row group; checks every file's columns.

    Reads each file's footer on the driver (one small read per file). Memory: four numbers per row group.
    """
    units = []
    for index, url in enumerate(files):
        handle = parquet_file(url, options)
        check_columns(handle.schema_arrow.names, config.columns, url)
        units += [(index, url, group, first) for group, first in row_groups(handle)]
    return units


def _report_rows(names_json: str, config_json: str, options_json: str):
    """Builds the mapInArrow function over units; the matcher is built once per Python worker and reused.
    Memory per worker: one batch of caption rows and its report."""
    cache: dict = {}

    def run(unit_batches):
        if "matcher" not in cache:
            names = pa.Table.from_pylist(json.loads(names_json))
            config = _config_from_json(config_json)
            cache["matcher"], cache["config"] = matcher_from_names(names, config.case_sensitive), config
        matcher, config, options = cache["matcher"], cache["config"], json.loads(options_json)
        for units in unit_batches:
            for unit in units.to_pylist():
                chunks = match_batches(unit["url"], matcher, config, options, [(unit["row_group"], unit["first"])])
                for matched, counts, examples in chunks:
                    file = unit["file"]
                    report = [{"file": file, "reason": reason, "count": count} for reason, count in counts.items()]
                    for example in examples:
                        report.append({**example, "file": file, "reason": f"example:{example['reason']}", "count": 0})
                    yield from _with_report_columns(matched, file).to_batches()
                    yield from pa.Table.from_pylist(report, schema=REPORT_SCHEMA).to_batches()

    return run


def _with_report_columns(matched: pa.Table, file: int) -> pa.Table:
    rows = matched.num_rows
    matched = matched.append_column("file", pa.array([file] * rows, pa.int64()))
    matched = matched.append_column("reason", pa.array([""] * rows, pa.string()))
    return matched.append_column("count", pa.array([0] * rows, pa.int64())).cast(REPORT_SCHEMA)


def _config_from_json(text: str) -> MatchConfig:
    data = json.loads(text)
    return MatchConfig(**{**data, "columns": CaptionColumns(**data["columns"])})


def _stream(frame, path: Path, schema: pa.Schema, chunk_rows: int = 8192) -> int:
    """Writes a sorted DataFrame's rows into ``path`` through :class:`.match.RowGroupWriter`, partition by
    partition (``toLocalIterator``); returns the rows written. Driver memory: a partition and one chunk."""
    rows = iter(frame.toLocalIterator(prefetchPartitions=True))
    with RowGroupWriter(path, schema) as writer:
        while chunk := list(itertools.islice(rows, chunk_rows)):
            writer.write(pa.Table.from_pylist([row.asDict() for row in chunk], schema=schema))
    return writer.rows


def match_files_spark(
    spark, files: list[str], names: pa.Table, config: MatchConfig, output: Path, storage_options: dict | None = None
) -> dict:
    """Matches ``files`` on Spark; writes ``matches.parquet`` and ``rejected_examples.parquet`` with the bytes of
    :func:`.match.match_files`; returns the same funnel.

    Memory: each worker one batch; the executors the report (matched rows, counts and examples, cached, spilling to
    disk); the driver the row-group list and one partition of the sorted output at a time.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not files:
        raise ValueError("captions: expected at least one parquet file, got none")
    units = row_group_units(files, config, storage_options)
    slices = spark.sparkContext.parallelize(units, max(len(units), 1))  # one row group per task
    frame = spark.createDataFrame(slices, _spark_schema(UNIT_SCHEMA))
    run = _report_rows(json.dumps(names.to_pylist()), json.dumps(asdict(config)), json.dumps(storage_options or {}))
    report = frame.mapInArrow(run, _spark_schema(REPORT_SCHEMA)).cache()

    totals = report.filter("reason != '' AND reason NOT LIKE 'example:%'").groupBy("reason").agg(F.sum("count"))
    counts = {row[0]: int(row[1]) for row in totals.collect()}
    # the first examples_per_reason of each reason and file, by row: what the multiprocessing engine keeps
    examples = report.filter("reason LIKE 'example:%'").withColumn("reason", F.expr("substring(reason, 9)"))
    by_reason = Window.partitionBy("file", "reason").orderBy("row")
    examples = examples.withColumn("rank", F.row_number().over(by_reason))
    examples = examples.filter(F.col("rank") <= config.examples_per_reason).orderBy("file", "row")
    _stream(examples.select(*EXAMPLE_SCHEMA.names), Path(output) / "rejected_examples.parquet", EXAMPLE_SCHEMA)

    matched = report.filter("reason = ''").select(*MATCH_SCHEMA.names)
    by_url = Window.partitionBy("url")
    ranked = matched.withColumn("people", F.size(F.collect_set("identity_id").over(by_url))).withColumn(
        "rank", F.row_number().over(by_url.orderBy("caption", "source", "row"))
    )
    ranked = ranked.cache()
    counts["url_names_several_people"] = ranked.filter("people > 1").count()
    counts["duplicate_url"] = ranked.filter("people = 1 AND rank > 1").count()
    kept = ranked.filter("people = 1 AND rank = 1").orderBy("url").select(*MATCH_SCHEMA.names)
    counts["matched"] = _stream(kept, Path(output) / "matches.parquet", MATCH_SCHEMA)
    report.unpersist()
    ranked.unpersist()
    return {"files": [file_name(f) for f in files], "funnel": counts}  # no presigned query


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

    types = {pa.string(): StringType(), pa.int32(): IntegerType(), pa.int64(): LongType(), pa.float64(): DoubleType()}
    return StructType([StructField(field.name, types[field.type], True) for field in schema])
