"""Bad inputs refused early with errors that name them: oversized images, empty or unreadable caption parquet."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from namespace.data_pipeline.download import DownloadConfig, download
from namespace.data_pipeline.match import MatchConfig, match_files
from namespace.data_pipeline.match_batch import MATCH_SCHEMA
from namespace.data_pipeline.names import build_names, load_names
from namespace.images import as_image_list, load_image

CAPTION_NUMBERS = {"WIDTH": 512, "HEIGHT": 512, "similarity": 0.3, "punsafe": 0.0, "pwatermark": 0.0}


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 20000 × 20000 PNG (400 M pixels, 2.2 × PIL's default limit): 48 KB on disk, one bit per pixel."""
    path = tmp_path_factory.mktemp("images") / "huge.png"
    Image.new("1", (20000, 20000)).save(path)
    return path


def test_an_image_beyond_the_pixel_limit_is_a_value_error_naming_the_file(bomb):
    """It used to escape as PIL's DecompressionBombError, which the command line shows as a traceback."""
    limit = f"{Image.MAX_IMAGE_PIXELS:,}"
    expected = rf"^--references\[0\]: '{re.escape(str(bomb))}' is too large: expected at most {limit} pixels "
    with pytest.raises(ValueError, match=expected + r".*found 400,000,000 pixels; downscale it$"):
        as_image_list([bomb], "--references")


def test_the_limit_is_max_image_pixels_itself(tmp_path, monkeypatch):
    """Between the limit and twice it PIL only warns: that range is refused too, so there is one limit."""
    path = tmp_path / "face.png"
    Image.new("RGB", (40, 40)).save(path)  # 1600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"image: '.*face\.png' is too large: expected at most 1,000 pixels.*1,600"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1600)
    assert load_image(path).size == (40, 40)


@pytest.fixture
def names(tmp_path):
    listing = tmp_path / "names.txt"
    listing.write_text("Alma Quintrell\n")
    (tmp_path / "names").mkdir()
    build_names([listing], tmp_path / "names")
    return load_names(tmp_path / "names")


def caption_file(path, captions):
    rows = [{"URL": f"http://x/{i}.jpg", "TEXT": caption, **CAPTION_NUMBERS} for i, caption in enumerate(captions)]
    schema = pa.schema([("URL", pa.string()), ("TEXT", pa.string())] + [(k, pa.float64()) for k in CAPTION_NUMBERS])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return str(path)


def test_empty_or_unreadable_caption_files_are_refused_before_matching(names, tmp_path):
    """An empty caption file used to pass the match stage and fail in img2dataset ("no shard status"); a zero-byte
    one failed with pyarrow's "Parquet file size is 0 bytes", naming no file. Every bad file is named at once."""
    good = caption_file(tmp_path / "good.parquet", ["Alma Quintrell at the gala"])
    empty = caption_file(tmp_path / "empty.parquet", [])
    zero = tmp_path / "zero.parquet"
    zero.write_bytes(b"")
    text = tmp_path / "notes.parquet"
    text.write_text("URL,TEXT\n")
    output = tmp_path / "match"
    output.mkdir()
    with pytest.raises(ValueError) as refused:
        match_files([good, empty, str(zero), str(text)], names, MatchConfig(), output)
    message = str(refused.value)
    assert message.startswith("captions: ")
    assert f"{empty!r} holds no rows (expected caption rows)" in message
    assert f"{str(zero)!r} is not a readable parquet file (Parquet file size is 0 bytes)" in message
    assert f"{str(text)!r} is not a readable parquet file" in message
    assert repr(good) not in message
    assert list(output.iterdir()) == []  # refused before anything was written
    assert match_files([good], names, MatchConfig(), output)["funnel"]["matched"] == 1


def test_download_refuses_an_empty_match_list_before_img2dataset(tmp_path):
    matches = tmp_path / "matches.parquet"
    pq.write_table(MATCH_SCHEMA.empty_table(), matches)
    output = tmp_path / "download"
    output.mkdir()
    with pytest.raises(ValueError, match=rf"^download: '{re.escape(str(matches))}' holds no rows: no caption named"):
        download(matches, output, DownloadConfig(processes=1, threads=1))
    assert list(output.iterdir()) == []  # img2dataset never started
