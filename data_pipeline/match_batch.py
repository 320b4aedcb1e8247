"""One batch of caption rows → the rows naming exactly one person, the count of every reason a row is rejected, and a
few rejected examples: the match stage's work, shared by the multiprocessing and Spark engines (:mod:`.match`,
:mod:`.spark_match`). Memory: one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from .matcher import NameMatcher

if TYPE_CHECKING:
    from .match import MatchConfig

MATCH_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("caption", pa.string()),
        ("identity_id", pa.int32()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("similarity", pa.float64()),
        ("source", pa.string()),
        ("row", pa.int64()),
    ]
)


def _filter_reasons(batch: pa.Table, config: MatchConfig) -> pa.Array:
    """The first failing filter of each row ('' when it passes), in funnel order."""
    columns = config.columns
    tests = [("missing_url", pc.invert(pc.is_valid(batch[columns.url])))]
    for column, bound, reason, above in (
        (columns.width, config.min_width, "too_small", False),
        (columns.height, config.min_height, "too_small", False),
        (columns.similarity, config.min_similarity, "low_similarity", False),
        (columns.punsafe, config.max_punsafe, "unsafe", True),
        (columns.pwatermark, config.max_pwatermark, "watermark", True),
    ):
        if column is None:
            continue
        values = batch[column]
        failing = pc.greater(values, bound) if above else pc.less(values, bound)
        tests.append((reason, pc.or_kleene(pc.fill_null(failing, True), pc.invert(pc.is_valid(values)))))
    reasons = pa.array([""] * batch.num_rows, pa.string())
    for reason, failing in reversed(tests):  # the earliest test wins: apply it last
        reasons = pc.if_else(failing, reason, reasons)
    return reasons


def _captions(column: pa.ChunkedArray) -> list[str | None]:
    """Captions as text; a value that is not valid UTF-8 becomes None (recorded as caption_not_utf8)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            return column.to_pylist()
        except UnicodeDecodeError:
            column = column.cast(pa.binary())
    captions = []
    for value in column.to_pylist():
        try:
            captions.append(value.decode("utf-8") if isinstance(value, bytes) else value)
        except UnicodeDecodeError:
            captions.append(None)
    return captions


def match_batch(batch: pa.Table, matcher: NameMatcher, config: MatchConfig, sources: pa.Array, rows: pa.Array):
    """Matches one batch; returns (matched rows as MATCH_SCHEMA, counts per reason, rejected examples).

    Args:
        batch: caption rows with the configured columns.
        matcher: the names to find.
        config: the filters.
        sources: each row's caption file (:func:`source_name`), kept in the outputs as ``source``.
        rows: each row's index in its caption file, kept as ``row`` (it breaks ties in the URL deduplication).
    """
    columns = config.columns
    reasons = _filter_reasons(batch, config).to_pylist()
    captions = _captions(batch[columns.text])
    candidates = [i for i, reason in enumerate(reasons) if not reason]
    for i in candidates:
        if captions[i] is None:
            reasons[i] = "caption_not_utf8" if batch[columns.text][i].is_valid else "missing_caption"
    candidates = [i for i in candidates if not reasons[i]]
    found = matcher.identities([captions[i] for i in candidates])  # {position in candidates: ids}
    identity_of = {}
    for position, i in enumerate(candidates):
        ids = found.get(position)
        if not ids:
            reasons[i] = "no_name"
        elif len(ids) > 1:
            reasons[i] = "several_names"
        else:
            identity_of[i] = next(iter(ids))
    kept = sorted(identity_of)
    take = pa.array(kept, pa.int64())

    def column(name, dtype):
        if name is None:
            return pa.nulls(len(kept), dtype)
        return batch[name].take(take).cast(dtype)

    matched = pa.table(
        {
            "url": column(columns.url, pa.string()),
            "caption": pa.array([captions[i] for i in kept], pa.string()),
            "identity_id": pa.array([identity_of[i] for i in kept], pa.int32()),
            "width": column(columns.width, pa.int64()),
            "height": column(columns.height, pa.int64()),
            "similarity": column(columns.similarity, pa.float64()),
            "source": sources.take(take).cast(pa.string()),
            "row": rows.take(take).cast(pa.int64()),
        },
        schema=MATCH_SCHEMA,
    )
    counts: dict[str, int] = {"rows": batch.num_rows, "matched": len(kept)}
    examples = []
    for i, reason in enumerate(reasons):
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
            if counts[reason] <= config.examples_per_reason:
                caption = captions[i] if captions[i] is not None else repr(batch[columns.text][i].as_py())
                source, row = sources[i].as_py(), rows[i].as_py()
                examples.append({"source": source, "row": row, "reason": reason, "caption": caption})
    return matched, counts, examples
