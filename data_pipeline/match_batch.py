"""One batch of caption rows → the rows naming exactly one person, the count of every reason a row is rejected, and a
few rejected examples: the match stage's work, shared by the multiprocessing and Spark engines (:mod:`.match`,
:mod:`.spark_match`). Memory: one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
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


# A row's fate, in funnel order: the first failing test wins. Code 0 (REASONS[0] = "") passes.
REASONS = ("", "missing_url", "too_small", "low_similarity", "unsafe", "watermark", "missing_caption",
           "caption_not_utf8", "no_name", "several_names")  # fmt: skip
CODE = {reason: code for code, reason in enumerate(REASONS)}


def _filter_codes(batch: pa.Table, config: MatchConfig) -> np.ndarray:
    """(n,) int8: the code of each row's first failing filter (0 when it passes), in funnel order."""
    columns = config.columns
    tests = [("missing_url", pc.is_null(batch[columns.url]))]
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
        tests.append((reason, pc.fill_null(failing, True)))  # a missing value fails
    codes = np.zeros(batch.num_rows, np.int8)
    for reason, failing in reversed(tests):  # the earliest test wins: apply it last
        codes[failing.to_numpy(zero_copy_only=False)] = CODE[reason]
    return codes


def _text(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The captions as (n,) large_string, a value that is not valid UTF-8 as null, and the (n,) mask of those."""
    raw = column.combine_chunks().cast(pa.large_binary())
    try:
        return raw.cast(pa.large_string()), np.zeros(len(raw), bool)  # Arrow validates UTF-8 in bulk
    except pa.ArrowInvalid:
        pass
    not_utf8 = np.zeros(len(raw), bool)
    for i, value in enumerate(raw.to_pylist()):  # rare: find the culprits
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                not_utf8[i] = True
    return pc.if_else(pa.array(not_utf8), None, raw).cast(pa.large_string()), not_utf8


def _counts_and_examples(codes: np.ndarray, batch: pa.Table, config: MatchConfig, sources: pa.Array, rows: pa.Array):
    """Rows per rejection reason (in order of first appearance) and the first few rows of each as examples."""
    tally = np.bincount(codes, minlength=len(REASONS))
    rejected = np.flatnonzero(tally[1:]) + 1  # the codes of the reasons present (code 0 passes)
    where = {code: np.flatnonzero(codes == code) for code in rejected}
    order = sorted(rejected, key=lambda code: where[code][0])
    counts = {REASONS[code]: int(tally[code]) for code in order}
    chosen = np.sort(
        np.concatenate([np.zeros(0, np.int64)] + [where[code][: config.examples_per_reason] for code in order])
    )
    take = pa.array(chosen, pa.int64())
    texts = batch[config.columns.text].take(take).cast(pa.large_binary()).to_pylist()
    places = zip(sources.take(take).to_pylist(), rows.take(take).to_pylist(), strict=True)
    examples = []
    for i, value, (source, row) in zip(chosen.tolist(), texts, places, strict=True):
        try:
            caption = value.decode("utf-8")
        except (AttributeError, UnicodeDecodeError):  # null, or not UTF-8: shown as Python writes it
            caption = repr(value)
        examples.append({"source": source, "row": row, "reason": REASONS[codes[i]], "caption": caption})
    return counts, examples


def match_batch(batch: pa.Table, matcher: NameMatcher, config: MatchConfig, sources: pa.Array, rows: pa.Array):
    """Matches one batch; returns (matched rows as MATCH_SCHEMA, counts per reason, rejected examples).

    Filters, caption checks and counts run in Arrow and numpy, the names in the matcher's automaton: Python touches
    only the hits and the examples, never each caption. Memory: a few copies of the batch's captions.

    Args:
        batch: (n rows) caption rows with the configured columns.
        matcher: the names to find.
        config: the filters.
        sources: (n,) each row's caption file (:func:`source_name`), kept in the outputs as ``source``.
        rows: (n,) each row's index in its caption file, kept as ``row`` (it breaks ties in the URL deduplication).
    """
    columns = config.columns
    codes = _filter_codes(batch, config)
    text, not_utf8 = _text(batch[columns.text])
    passing = codes == 0
    codes[passing & not_utf8] = CODE["caption_not_utf8"]
    codes[passing & ~not_utf8 & pc.is_null(text).to_numpy(zero_copy_only=False)] = CODE["missing_caption"]
    candidates = np.flatnonzero(codes == 0)
    position, identity = matcher.find(text.take(pa.array(candidates, pa.int64())))  # distinct pairs, by position
    named, first, people = np.unique(position, return_index=True, return_counts=True)
    codes[candidates] = CODE["no_name"]
    codes[candidates[named[people > 1]]] = CODE["several_names"]
    kept = candidates[named[people == 1]]  # ascending
    codes[kept] = 0
    take = pa.array(kept, pa.int64())

    def column(name, dtype):
        if name is None:
            return pa.nulls(len(kept), dtype)
        return batch[name].take(take).cast(dtype)

    matched = pa.table(
        {
            "url": column(columns.url, pa.string()),
            "caption": text.take(take).cast(pa.string()),
            "identity_id": pa.array(identity[first[people == 1]], pa.int32()),
            "width": column(columns.width, pa.int64()),
            "height": column(columns.height, pa.int64()),
            "similarity": column(columns.similarity, pa.float64()),
            "source": sources.take(take).cast(pa.string()),
            "row": rows.take(take).cast(pa.int64()),
        },
        schema=MATCH_SCHEMA,
    )
    counts, examples = _counts_and_examples(codes, batch, config, sources, rows)
    return matched, {"rows": batch.num_rows, "matched": len(kept), **counts}, examples
