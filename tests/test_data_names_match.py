"""Stages 1–2: names and matching, on small hand-made inputs and on the embedded sample's known truth."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from namespace.data_pipeline.match import MatchConfig, match_files
from namespace.data_pipeline.match_batch import match_batch
from namespace.data_pipeline.matcher import NameMatcher
from namespace.data_pipeline.names import build_names, load_names, normalise
from namespace.data_pipeline.normalise import normalise_array
from namespace.data_pipeline.sample import generate_sample

from .conftest import local_spark_session

SAMPLE_MATCH = MatchConfig(min_width=96, min_height=96)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    truth = generate_sample(folder, "http://127.0.0.1:9/")
    names = folder / "names"
    names.mkdir()
    build_names([truth["names_file"]], names)
    return truth, load_names(names)


class TestNames:
    def test_normalise(self):
        assert normalise("  Ａlma\u00a0 \tQuintrell ") == "Alma Quintrell"  # NFKC folds the full-width A

    def test_aliases_merge_and_ambiguous_names_are_recorded(self, tmp_path):
        listing = tmp_path / "names.txt"
        listing.write_text("Boris Vantanen | Bo Vantanen\nBoris  Vantanen\nMadonna\nThe Best\nCleo Marchetti | B V\n")
        summary = build_names([listing], tmp_path)
        names = pq.read_table(tmp_path / "names.parquet").to_pylist()
        assert [(n["name"], n["aliases"]) for n in names] == [
            ("Boris Vantanen", ["Bo Vantanen"]),
            ("Cleo Marchetti", ["B V"]),
        ]
        dropped = {(d["name"], d["reason"]) for d in pq.read_table(tmp_path / "dropped.parquet").to_pylist()}
        assert ("Madonna", "single_token") in dropped and ("The Best", "common_words") in dropped
        assert ("Boris Vantanen", "merged_into:Boris Vantanen") in dropped  # the second line: nothing lost silently
        assert summary["names_read"] == 5 and summary["identities"] == 2

    def test_alias_of_two_identities_is_dropped_from_both(self, tmp_path):
        listing = tmp_path / "names.csv"
        listing.write_text("name,aliases\nAnna Berg,A. Berg\nArne Berg,A. Berg\n")
        build_names([listing], tmp_path)
        assert [n["aliases"] for n in pq.read_table(tmp_path / "names.parquet").to_pylist()] == [[], []]

    def test_parquet_name_lists(self, tmp_path):
        pq.write_table(pa.table({"celebrity": ["Alma Quintrell"], "aka": [["Al Quintrell"]]}), tmp_path / "n.parquet")
        build_names([tmp_path / "n.parquet"], tmp_path, name_column="celebrity", alias_column="aka")
        assert pq.read_table(tmp_path / "names.parquet")["aliases"].to_pylist() == [["Al Quintrell"]]

    def test_empty_or_all_ambiguous_list(self, tmp_path):
        listing = tmp_path / "names.txt"
        listing.write_text("Madonna\nGolden River\n")
        with pytest.raises(ValueError, match=r"none of the 2 names is usable .*common_words.*single_token"):
            build_names([listing], tmp_path)
        listing.write_text("")
        with pytest.raises(ValueError, match="none of the 0 names is usable"):
            build_names([listing], tmp_path)

    def test_typographic_punctuation_is_ascii(self):
        assert normalise("Lupita Nyong’o") == normalise("Lupita Nyongʼo") == "Lupita Nyong'o"
        assert (
            normalise("Dwayne “The Rock” Johnson")
            == normalise("Dwayne ″The Rock″ Johnson")
            == 'Dwayne "The Rock" Johnson'
        )
        assert normalise("Jean‑Paul Belmondo") == "Jean-Paul Belmondo"  # a non-breaking hyphen

    def test_accent_folded_aliases_and_their_collisions(self, tmp_path):
        listing = tmp_path / "names.txt"
        listing.write_text(
            "Beyoncé Knowles | Beyoncé Giselle Knowles\nJosé García\nJose Garcia\nZoë Kravitz\nŁukasz Żak\n"
            "Сергей Лазарев\nRenée Zellweger\nRenee Zellweger | Renee Z. Zellweger\n"
        )
        assert build_names([listing], tmp_path)["accent_folded_aliases"] == 0  # off by default
        assert sum(map(len, load_names(tmp_path)["aliases"].to_pylist())) == 2  # the two listed aliases only
        summary = build_names([listing], tmp_path, fold_accents=True)
        aliases = {n["name"]: n["aliases"] for n in load_names(tmp_path).to_pylist()}
        assert aliases["Beyoncé Knowles"] == ["Beyonce Giselle Knowles", "Beyonce Knowles", "Beyoncé Giselle Knowles"]
        assert aliases["Zoë Kravitz"] == ["Zoe Kravitz"] and aliases["Łukasz Żak"] == ["Lukasz Zak"]
        assert aliases["Сергей Лазарев"] == []  # Cyrillic й is not и: only Latin letters lose their accents
        assert aliases["José García"] == [] and aliases["Jose Garcia"] == []  # the folded form names someone else
        assert aliases["Renée Zellweger"] == [] and aliases["Renee Zellweger"] == ["Renee Z. Zellweger"]
        dropped = {(d["name"], d["reason"]) for d in pq.read_table(tmp_path / "dropped.parquet").to_pylist()}
        assert ("jose garcia", "folded_alias_of_several_identities") in dropped
        assert ("renee zellweger", "folded_alias_of_several_identities") in dropped
        assert summary["accent_folded_aliases"] == 4
        assert summary["dropped"]["folded_alias_of_several_identities"] == 2

    def test_missing_column(self, tmp_path):
        (tmp_path / "n.csv").write_text("person\nAlma Quintrell\n")
        with pytest.raises(ValueError, match=r"missing column\(s\) \['name'\]; found \['person'\]"):
            build_names([tmp_path / "n.csv"], tmp_path)


class TestMatcher:
    def test_word_boundaries_longest_match_and_case(self):
        matcher = NameMatcher([0, 1, 2], [["Alma Quintrell", "A. Quintrell"], ["Maria Smith"], ["Anna Maria Smith"]])
        captions = [
            "Alma Quintrell at the show",
            "AlmaQuintrell fan club",  # inside a longer word
            "ALMA  QUINTRELL and A. Quintrell",  # case, spacing and an alias: still one person
            "Anna Maria Smith on stage",  # the longer name wins over the one inside it
            "Maria Smith and Alma Quintrell!",  # two people
            "Alma Quintrells merchandise",
            "",
        ]
        assert matcher.identities(captions) == {0: {0}, 2: {0}, 3: {2}, 4: {0, 1}}

    def test_typographic_apostrophes_and_quotes_match_their_ascii_forms(self):
        matcher = NameMatcher([0, 1, 2], [["Lupita Nyong’o"], ["Conan O'Brien"], ['Dwayne "The Rock" Johnson']])
        captions = [
            "Lupita Nyong'o at the Oscars",  # the name list is typographic, the caption ASCII
            "Lupita Nyongʼo, portrait",  # a modifier-letter apostrophe
            "Conan O’Brien on stage",  # the caption typographic, the name list ASCII
            "Conan O‘Brien and the band",
            "Dwayne “The Rock” Johnson signs autographs",
            "Dwayne ″The Rock″ Johnson",
            "Conan OBrien",  # no apostrophe at all is another word
        ]
        assert matcher.identities(captions) == {0: {0}, 1: {0}, 2: {1}, 3: {1}, 4: {2}, 5: {2}}

    def test_caption_offsets_survive_normalisation(self):
        """Normalising the batch changes lengths (ligatures, case, runs of spaces, a separator inside a caption):
        every name must still be credited to its own caption."""
        matcher = NameMatcher([7, 8], [["Alma Quintrell"], ["Boris Vantanen"]])
        captions = [
            "\ufb01ne İİİ  \t ",  # ﬁ → fi and İ → i̇ lengthen, the spaces shrink
            "Boris  Vantanen",
            "",
            "x\x00Alma Quintrell\x00y",  # the separator itself, inside a caption
            "  Ａlma Quintrell",  # full-width A, leading spaces
            "naïve Boris Vantanen’s café",
            "Boris Vantanen" + " word" * 3000 + " Alma Quintrell",  # two people far apart
        ]
        assert matcher.identities(captions) == {1: {8}, 3: {7}, 4: {7}, 5: {8}, 6: {7, 8}}
        caption, identity = matcher.find(pa.array(captions).slice(3))  # an Arrow slice: offsets start inside
        assert caption.tolist() == [0, 1, 2, 3, 3] and identity.tolist() == [7, 7, 8, 7, 8]
        case_sensitive = NameMatcher([7], [["Alma Quintrell"]], case_sensitive=True)
        assert case_sensitive.identities(captions) == {3: {7}, 4: {7}, 6: {7}}  # NFKC makes Ａ an A


def test_normalise_array_is_normalise_of_each_value():
    values = ["Alma Quintrell", "", " lead", "trail ", "two  spaces", "tab\there", "Nyong’o", "Ｆull", "\ufb01",
              "İstanbul", "a\u3000b", "nbsp\xa0x", "x\x00y", "ΟΔΥΣΣΕΥΣ", "\x85", "plain ascii", "é"]  # fmt: skip
    array = pa.array(["pad", *values], pa.large_string()).slice(1)  # an offset into the buffers
    assert normalise_array(array).to_pylist() == [normalise(value) for value in values]
    assert normalise_array(array, lower=True).to_pylist() == [normalise(value).lower() for value in values]


class TestMatchStage:
    def test_match_batch_reasons_counts_and_examples(self):
        """One row per outcome; counts in order of first appearance, examples in row order, at most one per reason."""
        matcher = NameMatcher([3, 4], [["Alma Quintrell"], ["Boris Vantanen"]])
        rows = [  # (url, caption, width, similarity, punsafe)
            ("u0", b"Boris Vantanen at home", 512, 0.3, 0.0),  # matched
            ("u1", b"a bowl of soup", 512, 0.3, 0.0),  # no_name
            (None, b"Alma Quintrell", 512, 0.3, 0.0),  # missing_url
            ("u3", b"Alma Quintrell", 100, 0.3, 0.0),  # too_small
            ("u4", b"Alma Quintrell", None, 0.3, 0.0),  # too_small: no width
            ("u5", b"Alma Quintrell", 512, 0.1, 0.0),  # low_similarity
            ("u6", b"Alma Quintrell", 512, 0.3, 0.9),  # unsafe
            ("u7", None, 512, 0.3, 0.0),  # missing_caption
            ("u8", b"Alma Quintrell \xff", 512, 0.3, 0.0),  # caption_not_utf8
            ("u9", b"Alma Quintrell and Boris Vantanen", 512, 0.3, 0.0),  # several_names
            ("u10", b"ALMA QUINTRELL\xe2\x80\x99s caf\xc3\xa9", 512, 0.3, 0.0),  # matched
            ("u11", b"more soup", 512, 0.3, 0.0),  # no_name: a second example is not kept
            ("u12", b"\xfe", 50, 0.3, 0.0),  # too_small wins over a caption that is not UTF-8
        ]
        url, caption, width, similarity, punsafe = map(list, zip(*rows, strict=True))
        raw = pa.array(caption, pa.binary())
        for text in (raw, pa.Array.from_buffers(pa.string(), len(raw), raw.buffers(), raw.null_count)):
            columns = {"URL": url, "TEXT": text, "WIDTH": width, "similarity": similarity, "punsafe": punsafe}
            batch = pa.table({**columns, "HEIGHT": [512] * len(rows), "pwatermark": [0.0] * len(rows)})
            sources = pa.array([f"file-{i}" for i in range(len(rows))])
            config = MatchConfig(examples_per_reason=1)
            matched, counts, examples = match_batch(batch, matcher, config, sources, pa.array(np.arange(len(rows))))
            assert matched.to_pydict() == {
                "url": ["u0", "u10"],
                "caption": ["Boris Vantanen at home", "ALMA QUINTRELL’s café"],
                "identity_id": [4, 3],
                "width": [512, 512],
                "height": [512, 512],
                "similarity": [0.3, 0.3],
                "source": ["file-0", "file-10"],
                "row": [0, 10],
            }
            expected = {"rows": 13, "matched": 2, "no_name": 2, "missing_url": 1, "too_small": 3, "low_similarity": 1,
                        "unsafe": 1, "missing_caption": 1, "caption_not_utf8": 1, "several_names": 1}  # fmt: skip
            assert list(counts.items()) == list(expected.items())  # in order of first appearance
            assert [(e["row"], e["reason"], e["caption"], e["source"]) for e in examples] == [
                (1, "no_name", "a bowl of soup", "file-1"),
                (2, "missing_url", "Alma Quintrell", "file-2"),
                (3, "too_small", "Alma Quintrell", "file-3"),
                (5, "low_similarity", "Alma Quintrell", "file-5"),
                (6, "unsafe", "Alma Quintrell", "file-6"),
                (7, "missing_caption", "None", "file-7"),
                (8, "caption_not_utf8", repr(b"Alma Quintrell \xff"), "file-8"),
                (9, "several_names", "Alma Quintrell and Boris Vantanen", "file-9"),
            ]
            for first, count, expected_counts in ((1, 2, {"no_name": 1, "missing_url": 1}), (0, 0, {})):
                part = [batch.slice(first, count), matcher, config, sources[first:], pa.array(np.arange(count))]
                matched, counts, examples = match_batch(*part)
                assert matched.num_rows == 0 and counts == {"rows": count, "matched": 0, **expected_counts}
            none = MatchConfig(examples_per_reason=0)
            _, counts, examples = match_batch(batch, matcher, none, sources, pa.array(np.arange(len(rows))))
            assert examples == [] and list(counts.items()) == list(expected.items())

    def test_benchmark_agrees_with_flashtext(self):
        """benchmarks/name_matching.py at a tiny size: every caption's names as flashtext finds them."""
        pytest.importorskip("flashtext")
        script = Path(__file__).parents[1] / "benchmarks/name_matching.py"
        command = [sys.executable, str(script), "--captions", "3000", "--names", "300", "--batch", "1000"]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        assert result["flashtext_agreement"] == 1.0 and result["flashtext_disagreements"] == 0
        assert result["match_stage_captions_per_second_per_core"] > 0
        assert result["flashtext_captions_per_second_per_core"] > 0

    def test_funnel_equals_the_sample_truth(self, sample, tmp_path):
        truth, names = sample
        summary = match_files(truth["files"], names, SAMPLE_MATCH, tmp_path)
        expected = truth["rows"]
        funnel = summary["funnel"]
        for reason in (
            "too_small",
            "low_similarity",
            "unsafe",
            "watermark",
            "several_names",
            "no_name",
            "duplicate_url",
        ):
            assert funnel[reason] == expected[reason], reason
        assert funnel["matched"] == expected["matched"]
        matches = pq.read_table(tmp_path / "matches.parquet").to_pylist()
        name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
        for name, person in truth["identities"].items():  # every single-name caption found, for the right person
            found = {row["url"] for row in matches if name_of[row["identity_id"]] == name}
            assert set(person["clean_urls"]) <= found
        assert not any(" and " in row["caption"] and "gala" in row["caption"] for row in matches)  # no two-name one

    def test_multiprocessing_gives_the_same_output(self, sample, tmp_path):
        truth, names = sample
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        one = match_files(truth["files"], names, SAMPLE_MATCH, tmp_path / "one")
        config = MatchConfig(min_width=96, min_height=96, processes=2)
        two = match_files(truth["files"], names, config, tmp_path / "two")
        assert one["funnel"] == two["funnel"]
        assert pq.read_table(tmp_path / "one/matches.parquet") == pq.read_table(tmp_path / "two/matches.parquet")

    def test_non_utf8_captions_are_recorded(self, sample, tmp_path):
        _, names = sample
        name = names["name"][0].as_py().encode()
        columns = {"URL": ["http://x/1.jpg", "http://x/2.jpg"], "TEXT": [name + b" \xff\xfe", name]}
        numbers = {"WIDTH": 512, "HEIGHT": 512, "similarity": 0.3, "punsafe": 0.0, "pwatermark": 0.0}
        table = pa.table({**columns, **{column: [value, value] for column, value in numbers.items()}})
        pq.write_table(table, tmp_path / "binary.parquet")
        (tmp_path / "out").mkdir()
        summary = match_files([str(tmp_path / "binary.parquet")], names, SAMPLE_MATCH, tmp_path / "out")
        assert summary["funnel"]["caption_not_utf8"] == 1 and summary["funnel"]["matched"] == 1
        examples = pq.read_table(tmp_path / "out/rejected_examples.parquet").to_pylist()
        assert [(e["reason"], e["row"]) for e in examples] == [("caption_not_utf8", 0)]

    def test_missing_columns(self, sample, tmp_path):
        _, names = sample
        pq.write_table(pa.table({"url": ["http://x"], "caption": ["someone"]}), tmp_path / "other.parquet")
        with pytest.raises(ValueError, match=r"missing column\(s\) \['URL', 'TEXT', 'WIDTH'.*Set a column to null"):
            match_files([str(tmp_path / "other.parquet")], names, SAMPLE_MATCH, tmp_path)


def provenance_file(path):
    """40 caption rows naming nobody, but for a tie (one URL and caption at rows 13 and 31: row 13 must win),
    typographic apostrophes and an unaccented name."""
    rows = [{"URL": f"http://x/soup-{i}.jpg", "TEXT": "a bowl of soup"} for i in range(40)]
    rows[13] = rows[31] = {"URL": "http://x/tie.jpg", "TEXT": "Lupita Nyong’o at the Oscars"}
    rows[22] = {"URL": "http://x/beyonce.jpg", "TEXT": "Beyonce Knowles on tour"}
    rows[27] = {"URL": "http://x/lupita.jpg", "TEXT": "Lupita Nyong'o, portrait"}
    numbers = {"WIDTH": 512, "HEIGHT": 512, "similarity": 0.3, "punsafe": 0.0, "pwatermark": 0.0}
    # row groups of 16 rows: the tie's two rows lie in different Spark work units
    pq.write_table(pa.Table.from_pylist([{**row, **numbers} for row in rows]), path, row_group_size=16)
    return str(path)


def assert_rows_are_in_their_files(rows):
    """Each row's provenance (source, row) holds its caption, and its URL for a match."""
    files = {}
    for row in rows:
        table = files.setdefault(row["source"], pq.read_table(row["source"]))
        assert table["TEXT"][row["row"]].as_py() == row["caption"], row
        if "url" in row:
            assert table["URL"][row["row"]].as_py() == row["url"], row


@pytest.mark.slow
def test_spark_local_mode_gives_the_same_match_output(sample, tmp_path, monkeypatch):
    pyspark = pytest.importorskip("pyspark")
    from namespace.data_pipeline.spark_match import match_files_spark

    truth, _ = sample
    (tmp_path / "names").mkdir()
    (tmp_path / "extra.txt").write_text("Lupita Nyong'o\nBeyoncé Knowles\n")
    build_names([truth["names_file"], tmp_path / "extra.txt"], tmp_path / "names", fold_accents=True)
    names = load_names(tmp_path / "names")
    files = [*truth["files"], provenance_file(tmp_path / "provenance.parquet")]
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # workers need this interpreter's pyarrow
    spark = local_spark_session(pyspark)
    try:
        (tmp_path / "spark").mkdir()
        (tmp_path / "local").mkdir()
        on_spark = match_files_spark(spark, files, names, SAMPLE_MATCH, tmp_path / "spark")
    finally:
        spark.stop()
    local = match_files(files, names, SAMPLE_MATCH, tmp_path / "local")
    assert on_spark["funnel"] == local["funnel"]
    spark_rows = pq.read_table(tmp_path / "spark/matches.parquet").sort_by("url").to_pylist()
    local_rows = pq.read_table(tmp_path / "local/matches.parquet").sort_by("url").to_pylist()
    assert spark_rows == local_rows  # every column, the provenance (source, row) included
    for name in ("matches.parquet", "rejected_examples.parquet"):  # the download numbers photos by row order
        assert (tmp_path / "spark" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert_rows_are_in_their_files(spark_rows)
    by_url = {row["url"]: row for row in spark_rows}
    name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    tie = by_url["http://x/tie.jpg"]
    assert (Path(tie["source"]).name, tie["row"]) == ("provenance.parquet", 13)  # the first of its two rows
    found = {key: name_of[by_url[f"http://x/{key}.jpg"]["identity_id"]] for key in ("tie", "lupita", "beyonce")}
    assert found == {"tie": "Lupita Nyong'o", "lupita": "Lupita Nyong'o", "beyonce": "Beyoncé Knowles"}
    examples = pq.read_table(tmp_path / "spark/rejected_examples.parquet").to_pylist()
    assert examples and all(example["row"] >= 0 for example in examples)
    assert_rows_are_in_their_files(examples)


def test_identity_embedders_are_pluggable_by_import_path():
    from namespace.data_pipeline.embedders import resolve_embedder, thumbnail

    assert resolve_embedder("namespace.data_pipeline.embedders:thumbnail") is thumbnail
    assert resolve_embedder("clip") is None  # the feature cache
    with pytest.raises(ValueError, match="cannot import 'no_such_module:embed'"):
        resolve_embedder("no_such_module:embed")
    expected = "expected 'clip', 'face', thumbnail, face_colors, 'judge:FOLDER' or 'module:function'"
    with pytest.raises(ValueError, match=expected):
        resolve_embedder("arcface")


def test_buckets_merge_into_the_order_of_one_deduplication(tmp_path, monkeypatch):
    """Matched rows spread over 7 buckets and merged back in batches smaller than a bucket equal one deduplication
    of all the rows (sorted by URL): the stage's output does not depend on the number of buckets."""
    from namespace.data_pipeline import match
    from namespace.data_pipeline.match_batch import MATCH_SCHEMA

    monkeypatch.setattr(match, "MERGE_BATCH_ROWS", 16)  # many batches per bucket
    monkeypatch.setattr(match, "ROWS_PER_GROUP", 50)  # several output row groups
    rng = np.random.default_rng(0)
    count = 900
    urls = [f"http://127.0.0.1/{i}.jpg" for i in rng.integers(0, 600, count)]  # repeated URLs: duplicates
    rows = pa.table(
        {"url": urls, "caption": [f"caption {i % 5}" for i in range(count)],
         "identity_id": pa.array(rng.integers(0, 3, count), pa.int32()), "width": pa.array([512] * count, pa.int64()),
         "height": pa.array([512] * count, pa.int64()), "similarity": [0.3] * count, "source": ["file"] * count,
         "row": pa.array(range(count), pa.int64())},
        schema=MATCH_SCHEMA,
    )  # fmt: skip
    buckets = match._Buckets(tmp_path / "buckets", 7)
    for start in range(0, count, 100):  # file by file, as the stage appends them
        buckets.write(rows.slice(start, 100))
    counts = match.write_deduplicated(buckets.close(), tmp_path)
    expected, expected_counts = match.deduplicate_urls(rows)
    merged = pq.read_table(tmp_path / "matches.parquet")
    assert merged.equals(expected) and merged["url"].to_pylist() == sorted(merged["url"].to_pylist())
    assert counts == {**expected_counts, "matched": expected.num_rows}
    assert expected_counts["duplicate_url"] > 0 and expected_counts["url_names_several_people"] > 0
