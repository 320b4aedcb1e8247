"""The match stage on Spark, for LAION scale: the same batch function (:func:`.match_batch.match_batch`) in
``mapInArrow``, the URL deduplication as a window, the output written by Spark.

Each row's provenance comes from Parquet's hidden ``_metadata`` column (Spark ≥ 3.5): ``file_path`` and
``row_index``, the row's index in its file however Spark splits the file into partitions and Arrow batches; the
multiprocessing engine records the same ``source`` and ``row``.

    spark = SparkSession.builder.master("spark://...").getOrCreate()
    match_files_spark(spark, ["s3a://laion/part-*.parquet"], names, MatchConfig(), output)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .match import EXAMPLE_SCHEMA, MatchConfig, check_columns, matcher_from_names, source_name
from .match_batch import MATCH_SCHEMA, match_batch

# one output schema for everything a partition reports: matched rows (reason ""), counts, and rejected examples
REPORT_SCHEMA = pa.schema([*MATCH_SCHEMA, ("reason", pa.string()), ("count", pa.int64())])


def _report_rows(names_json: str, config_json: str):
    """Builds the mapInArrow function; the matcher is built once per Python worker and reused."""
    cache: dict = {}

    def run(batches):
        if "matcher" not in cache:
            names = pa.Table.from_pylist(json.loads(names_json))
            config = _config_from_json(config_json)
            cache["matcher"], cache["config"] = matcher_from_names(names, config.case_sensitive), config
        matcher, config = cache["matcher"], cache["config"]
        for record_batch in batches:
            batch = pa.Table.from_batches([record_batch])
            sources, rows = _source_names(batch["_source"]), batch["_row"].combine_chunks()
            matched, counts, examples = match_batch(batch.drop(["_source", "_row"]), matcher, config, sources, rows)
            matched = matched.append_column("reason", pa.array([""] * matched.num_rows, pa.string()))
            matched = matched.append_column("count", pa.array([0] * matched.num_rows, pa.int64()))
            yield from matched.cast(REPORT_SCHEMA).to_batches()
            report = [{"reason": reason, "count": count} for reason, count in counts.items()]
            for example in examples:
                report.append({**example, "reason": f"example:{example['reason']}", "count": 0})
            yield from pa.Table.from_pylist(report, schema=REPORT_SCHEMA).to_batches()

    return run


def _source_names(paths: pa.ChunkedArray) -> pa.Array:
    """Spark's file URIs as :func:`.match.source_name` writes them, converting each distinct file once."""
    encoded = paths.combine_chunks().dictionary_encode()
    return pa.array(map(source_name, encoded.dictionary.to_pylist()), pa.string()).take(encoded.indices)


def _config_from_json(text: str) -> MatchConfig:
    from .match import CaptionColumns

    data = json.loads(text)
    return MatchConfig(**{**data, "columns": CaptionColumns(**data["columns"])})


def match_files_spark(spark, files: list[str], names: pa.Table, config: MatchConfig, output: Path) -> dict:
    """Matches ``files`` on Spark; writes ``matches.parquet`` (a Spark folder of parts) and
    ``rejected_examples.parquet``; returns the same funnel as :func:`.match.match_files`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not files:
        raise ValueError("captions: expected at least one parquet file, got none")
    frame = spark.read.parquet(*files)
    check_columns(frame.columns, config.columns, ", ".join(files))
    wanted = [name for name in asdict(config.columns).values() if name is not None]
    provenance = [F.col("_metadata.file_path").alias("_source"), F.col("_metadata.row_index").alias("_row")]
    frame = frame.select(*wanted, *provenance)
    run = _report_rows(json.dumps(names.to_pylist()), json.dumps(asdict(config)))
    report = frame.mapInArrow(run, _spark_schema(REPORT_SCHEMA)).cache()

    totals = report.filter("reason != '' AND reason NOT LIKE 'example:%'").groupBy("reason").agg(F.sum("count"))
    counts = {row[0]: int(row[1]) for row in totals.collect()}
    examples = [
        {**row.asDict(), "reason": row["reason"][len("example:") :]}
        for row in report.filter("reason LIKE 'example:%'")
        .select("source", "row", "reason", "caption")
        .limit(config.examples_per_reason * 16)
        .collect()
    ]
    matched = report.filter("reason = ''").drop("reason", "count")
    by_url = Window.partitionBy("url")
    ranked = matched.withColumn("people", F.size(F.collect_set("identity_id").over(by_url))).withColumn(
        "rank", F.row_number().over(by_url.orderBy("caption", "source", "row"))
    )
    ranked = ranked.cache()
    counts["url_names_several_people"] = ranked.filter("people > 1").count()
    counts["duplicate_url"] = ranked.filter("people = 1 AND rank > 1").count()
    kept = ranked.filter("people = 1 AND rank = 1").drop("people", "rank").orderBy("url")
    kept.write.mode("overwrite").parquet(str(Path(output) / "matches.parquet"))
    counts["matched"] = kept.count()
    pq.write_table(pa.Table.from_pylist(examples, schema=EXAMPLE_SCHEMA), Path(output) / "rejected_examples.parquet")
    report.unpersist()
    ranked.unpersist()
    return {"files": [Path(f).name for f in files], "funnel": counts}


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

    types = {pa.string(): StringType(), pa.int32(): IntegerType(), pa.int64(): LongType(), pa.float64(): DoubleType()}
    return StructType([StructField(field.name, types[field.type], True) for field in schema])
