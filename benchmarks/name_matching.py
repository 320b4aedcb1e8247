"""Name matching throughput: the whole match stage's batch function against flashtext, side by side in one run.

Synthetic LAION-like captions (10–20 words, about 5% naming one of the names, 5% with an accent or typographic
punctuation: an assumption, ``--non_ascii_share``) and 40,000 synthetic two-word names.
Three things are timed on the same captions and names, batch by batch in turns (so a busy machine slows all three
alike): ``match_batch`` (filters, UTF-8 checks, matching, the output table, counts and examples: the stage's work per
row), our matcher alone (``NameMatcher.find``: join, normalise, Aho-Corasick scan, hits), and flashtext's
``KeywordProcessor.extract_keywords`` per caption (the library people reach for with a large keyword list). Every
caption's flashtext matches are checked against ours.

The goal: the whole stage at ≥ 3× flashtext's captions/s in the same run (``stage_over_flashtext``);
``laion2b_en_core_hours_at_stage_rate`` is what LAION-2B-en's 2.3B captions cost at the stage's rate. On a shared
machine ``load_average_at_start`` says how busy it was: the absolute rates drop, the ratio holds. (The earlier
baseline, one regular-expression alternation of all names, ran at about 120 captions/s at 40,000 names: nobody would
choose it, and it is gone.) One core, about a minute:

    OMP_NUM_THREADS=1 python benchmarks/name_matching.py --captions 1000000 --names 40000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np
import pyarrow as pa
from flags import ArgumentParser
from flashtext import KeywordProcessor

from namespace.data_pipeline.match import MatchConfig
from namespace.data_pipeline.match_batch import match_batch
from namespace.data_pipeline.matcher import NameMatcher

WORDS = " ".join(  # a word list reads best as text
    [
        "photo of the a in at with on red blue car house dog cat street night beautiful woman man wedding dress",
        "portrait vintage poster logo shirt cotton summer beach city river old new black white art print design",
        "modern style family home garden kitchen book cover wall decor canvas painting",
    ]
).split()
# LAION's English captions carry accents and typographic punctuation: these take the matcher's slower path (Python
# normalises each such caption)
NON_ASCII_WORDS = ["café", "it’s", "naïve", "“retro”", "Zürich", "crème", "—", "São", "½", "ﬁne"]
SYLLABLES = "ka lo mi ra ne tu sa vi de po ri an el os ul ya be ko ma zi fe gu ha jo ni qu we xa".split()  # noqa: SIM905


def synthetic_names(count: int, rng: random.Random) -> list[str]:
    names = set()
    while len(names) < count:
        first = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        last = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
        names.add(f"{first} {last}")
    return sorted(names)


def synthetic_captions(
    count: int, names: list[str], rng: random.Random, named_share: float = 0.05, non_ascii_share: float = 0.05
) -> list[str]:
    captions = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(10, 20))]
        if rng.random() < non_ascii_share:
            words.insert(rng.randrange(len(words)), rng.choice(NON_ASCII_WORDS))
        if rng.random() < named_share:
            words.insert(rng.randrange(len(words)), rng.choice(names))
        captions.append(" ".join(words))
    return captions


def flashtext_processor(names: list[str]) -> KeywordProcessor:
    """flashtext set up as our matcher is: both sides lower-cased, whole words, the longest name at a position wins.

    Where the two may legitimately differ (never in these synthetic captions, plain ASCII with single spaces):
    flashtext's word characters are ``[A-Za-z0-9_]`` where ours are every ``str.isalnum`` character (so "_" and
    non-ASCII letters next to a name differ), and flashtext does not normalise captions (NFKC, typographic
    apostrophes, runs of spaces) as our matcher does. It reports each name as written.
    """
    processor = KeywordProcessor(case_sensitive=False)
    for name in names:
        processor.add_keyword(name)
    return processor


def caption_table(captions: list[str]) -> pa.Table:
    """The captions as LAION-style rows that pass every filter: every caption is scanned (the worst case)."""
    count = len(captions)
    return pa.table({"URL": [f"http://x/{i}" for i in range(count)], "TEXT": captions,
                     "WIDTH": [512] * count, "HEIGHT": [512] * count, "similarity": [0.3] * count,
                     "punsafe": [0.0] * count, "pwatermark": [0.0] * count})  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--captions", type=int, default=1_000_000)
    parser.add_argument("--names", type=int, default=40_000)
    parser.add_argument("--non_ascii_share", type=float, default=0.05, help="captions with a non-ASCII word")
    parser.add_argument("--batch", type=int, default=65_536, help="rows per batch (match.batch_rows)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    rng = random.Random(0)
    names = synthetic_names(args.names, rng)
    captions = synthetic_captions(args.captions, names, rng, non_ascii_share=args.non_ascii_share)
    table = caption_table(captions)
    load = os.getloadavg()[0]

    start = time.perf_counter()
    matcher = NameMatcher(range(len(names)), [[name] for name in names])
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    processor = flashtext_processor(names)
    flashtext_build_seconds = time.perf_counter() - start

    config, seconds, disagreements = MatchConfig(), {"stage": 0.0, "matcher": 0.0, "flashtext": 0.0}, 0
    for first in range(0, table.num_rows, args.batch):
        batch = table.slice(first, args.batch)
        start = time.perf_counter()  # as match_file calls it, provenance columns included
        sources = pa.array(["bench"] * batch.num_rows, pa.string())
        rows = pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
        match_batch(batch, matcher, config, sources, rows)
        seconds["stage"] += time.perf_counter() - start

        start = time.perf_counter()
        caption, identity = matcher.find(batch["TEXT"])
        seconds["matcher"] += time.perf_counter() - start

        texts = captions[first : first + batch.num_rows]
        start = time.perf_counter()
        theirs = [processor.extract_keywords(text) for text in texts]
        seconds["flashtext"] += time.perf_counter() - start

        ours = [set() for _ in texts]
        for index, identity_id in zip(caption.tolist(), identity.tolist(), strict=True):
            ours[index].add(names[identity_id])  # identity ids are the names' indices
        disagreements += sum(mine != set(found) for mine, found in zip(ours, theirs, strict=True))

    rate = {key: table.num_rows / value for key, value in seconds.items()}
    result = {
        "captions": args.captions,
        "names": args.names,
        "non_ascii_share": args.non_ascii_share,
        "load_average_at_start": round(load, 2),
        "automaton_build_seconds": round(build_seconds, 2),
        "automaton_captions_per_second_per_core": round(rate["matcher"]),
        "match_stage_captions_per_second_per_core": round(rate["stage"]),
        "flashtext_build_seconds": round(flashtext_build_seconds, 2),
        "flashtext_captions_per_second_per_core": round(rate["flashtext"]),
        "stage_over_flashtext": round(rate["stage"] / rate["flashtext"], 2),
        "laion2b_en_core_hours_at_stage_rate": round(2.32e9 / rate["stage"] / 3600, 2),
        "flashtext_agreement": round(1 - disagreements / table.num_rows, 6),  # share of captions, same names found
        "flashtext_disagreements": disagreements,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
