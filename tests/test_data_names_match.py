"""Stages 1–2: names and matching, on small hand-made inputs and on the embedded sample's known truth."""

import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from namespace.data_pipeline.match import MatchConfig, match_files
from namespace.data_pipeline.matcher import NameMatcher
from namespace.data_pipeline.names import build_names, load_names, normalise
from namespace.data_pipeline.sample import generate_sample

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


class TestMatchStage:
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


def test_spark_local_mode_gives_the_same_match_output(sample, tmp_path, monkeypatch):
    pyspark = pytest.importorskip("pyspark")
    from namespace.data_pipeline.spark_match import match_files_spark

    truth, names = sample
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # workers need this interpreter's pyarrow
    spark = (
        pyspark.sql.SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    try:
        (tmp_path / "spark").mkdir()
        (tmp_path / "local").mkdir()
        on_spark = match_files_spark(spark, truth["files"], names, SAMPLE_MATCH, tmp_path / "spark")
    finally:
        spark.stop()
    local = match_files(truth["files"], names, SAMPLE_MATCH, tmp_path / "local")
    assert on_spark["funnel"] == local["funnel"]
    columns = ["url", "caption", "identity_id", "width", "height", "similarity"]
    spark_rows = pq.read_table(tmp_path / "spark/matches.parquet").select(columns).sort_by("url")
    local_rows = pq.read_table(tmp_path / "local/matches.parquet").select(columns).sort_by("url")
    assert spark_rows.to_pylist() == local_rows.to_pylist()


def test_identity_embedders_are_pluggable_by_import_path():
    from namespace.data_pipeline.embedders import resolve_embedder, thumbnail

    assert resolve_embedder("namespace.data_pipeline.embedders:thumbnail") is thumbnail
    assert resolve_embedder("clip") is None  # the feature cache
    with pytest.raises(ValueError, match="cannot import 'no_such_module:embed'"):
        resolve_embedder("no_such_module:embed")
    with pytest.raises(ValueError, match="expected 'clip', thumbnail, face_colors or 'module:function'"):
        resolve_embedder("arcface")
