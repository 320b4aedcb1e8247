"""The scale benchmark's synthetic LAION-style world: tiny face photos of many people, and captions naming them.

A world of ``photos`` photos has ``photos / photos_per_person`` people (two-word names in ``names.txt``), each
photographed ``photos_per_person`` times (``namespace.testing.synthetic_face``: one look per person, a new pose and
background per photo). The captions (``captions-*.parquet``, ``rows_per_file`` rows each) hold one row per photo
naming its person, some rows naming a person that fail a filter (too small, low similarity, unsafe, watermarked),
and distractor rows naming nobody (most of them, some with a first name alone) up to ``rows_per_photo`` rows per
photo. The world grows in people, not in photos per person, so every stage's work per photo stays the same.

The images are the slow part (about 1 ms a photo): they are written once into an image folder keyed by their
settings and reused; the captions name the server's URL, so they are rewritten for each run (columns built with
numpy and pyarrow: seconds for millions of rows).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from namespace.testing import synthetic_face

SYLLABLES = "ka lo mi ra ne tu sa vi de po ri an el os ul ya be ko ma zi fe gu ha jo ni qu we xa do re".split()  # noqa: SIM905
TEMPLATES = [  # (before, after) the name
    ("", " at the film festival premiere"),
    ("Portrait of ", ", 2019"),
    ("", " smiles on the red carpet"),
    ("actor ", " photographed backstage"),
    ("A candid photo of ", " in Paris"),
    ("", " attends the gala dinner"),
    ("Close-up of ", " during an interview"),
    ("Singer ", " performing live"),
]
WORDS = " ".join(  # a word list reads best as text
    [
        "photo of the a in at with on red blue car house dog cat street night beautiful woman man wedding dress",
        "portrait vintage poster logo shirt cotton summer beach city river old new black white art print design",
        "modern style family home garden kitchen book cover wall decor canvas painting sunset soup winter",
    ]
).split()
FILTERS = {  # a failing value of each filtered column (configs/data/scale.yaml's match thresholds)
    "too_small": ("WIDTH", 64),
    "low_similarity": ("similarity", 0.1),
    "unsafe": ("punsafe", 0.9),
    "watermark": ("pwatermark", 0.95),
}


@dataclass
class WorldSize:
    """One world's size.

    Attributes:
        photos: photos served (one caption row names each).
        rows_per_photo: caption rows per photo, all kinds together (distractors fill the rest).
        photos_per_person: photos of each person (the number of people grows with ``photos``).
        filtered_per_photo: rows per photo that name a person but fail a filter.
        image_size: side of the served JPEGs.
        rows_per_file: caption rows per parquet file (the files grow in number, not in size).
        seed: seeds the captions (the faces are seeded by person and variant).
    """

    photos: int
    rows_per_photo: int = 100
    photos_per_person: int = 60
    filtered_per_photo: float = 0.2
    image_size: int = 32
    rows_per_file: int = 250_000
    seed: int = 0

    @property
    def people(self) -> int:
        return max(2, round(self.photos / self.photos_per_person))

    @property
    def caption_rows(self) -> int:
        return self.photos * self.rows_per_photo

    def __post_init__(self) -> None:
        filtered = round(self.photos * self.filtered_per_photo)
        if self.caption_rows < self.photos + filtered:
            raise ValueError(f"rows_per_photo: expected at least {1 + self.filtered_per_photo} (a row per photo and "
                             f"its filtered rows), got {self.rows_per_photo}")  # fmt: skip


def person_names(count: int) -> list[str]:
    """``count`` distinct two-word names, person k's a function of k alone (so every size names its people alike)."""
    base = len(SYLLABLES)

    def word(number: int, syllables: int) -> str:
        digits = [(number // base**i) % base for i in range(syllables)]
        return "".join(SYLLABLES[d] for d in digits).capitalize()

    # 7919 is prime to base**3: k → last name is one-to-one below base**3 (27,000 people), so no two names repeat
    return [f"{word(k, 2)} {word((k * 7919 + 7) % base**3, 3)}" for k in range(count)]


def photo_people(size: WorldSize) -> np.ndarray:
    """(photos,) the person of each photo: contiguous blocks, each ``photos_per_person`` ± 1 long."""
    return (np.arange(size.photos, dtype=np.int64) * size.people) // size.photos


def photo_files(size: WorldSize) -> list[str]:
    """Each photo's file name inside the image folder: ``PERSON-VARIANT.jpg``."""
    people = photo_people(size)
    first = np.searchsorted(people, people)  # the first photo of each photo's person
    variants = (np.arange(size.photos) - first).tolist()
    return [f"{p:05d}-{v:03d}.jpg" for p, v in zip(people.tolist(), variants, strict=True)]


def _write_photos(job: tuple[str, int, list[str]]) -> None:
    folder, image_size, files = job
    for file in files:
        person, variant = (int(part) for part in file[:-4].split("-"))
        buffer = io.BytesIO()
        synthetic_face(person, variant, image_size).save(buffer, format="JPEG", quality=90)
        (Path(folder) / file).write_bytes(buffer.getvalue())


def write_images(folder: str | Path, size: WorldSize, processes: int = 2) -> Path:
    """Writes the world's JPEGs into ``folder/images-PHOTOS-PERPERSON-SIZEpx`` unless a finished one is there;
    returns that folder. Written under a temporary name and renamed, so a killed run leaves no half folder."""
    images = Path(folder) / f"images-{size.photos}-{size.photos_per_person}-{size.image_size}px"
    if images.is_dir():
        return images
    partial = images.with_name(images.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files = photo_files(size)
    chunk = 1000
    jobs = [(str(partial), size.image_size, files[i : i + chunk]) for i in range(0, len(files), chunk)]
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:  # fork: the workers start imported
            for _ in pool.imap_unordered(_write_photos, jobs):
                pass
    else:
        for job in jobs:
            _write_photos(job)
    os.replace(partial, images)
    return images


def _join(*columns) -> pa.Array:
    return pc.binary_join_element_wise(*columns, "")


def _urls(base_url: str, folder: str, numbers: np.ndarray) -> pa.Array:
    return _join(pa.scalar(f"{base_url}{folder}/"), pc.cast(pa.array(numbers), pa.string()), pa.scalar(".jpg"))


def caption_table(size: WorldSize, base_url: str) -> pa.Table:
    """Every caption row of the world, shuffled: URL, TEXT, WIDTH, HEIGHT, similarity, punsafe, pwatermark.

    Memory: the whole table (about 100 bytes a row: 0.5 GB at 5 million rows), built column by column.
    """
    rng = np.random.default_rng(size.seed)
    names = pa.array(person_names(size.people))
    before = pa.array([t[0] for t in TEMPLATES])
    after = pa.array([t[1] for t in TEMPLATES])
    base_url = base_url.rstrip("/") + "/"

    def named(people: np.ndarray) -> pa.Array:
        template = rng.integers(0, len(TEMPLATES), len(people))
        return _join(before.take(template), names.take(people), after.take(template))

    # a row per photo, naming its person
    people = photo_people(size)
    urls = [_join(pa.scalar(base_url), pa.array(photo_files(size)))]
    texts = [named(people)]
    # rows naming a person that fail one filter (their URLs are never fetched)
    filtered = round(size.photos * size.filtered_per_photo)
    urls.append(_urls(base_url, "filtered", np.arange(filtered)))
    texts.append(named(rng.integers(0, size.people, filtered)))
    # distractors: random words, a tenth of them with a first name alone (the matcher must start and give up)
    distractors = size.caption_rows - size.photos - filtered
    words = pa.array(WORDS)
    columns = [words.take(rng.integers(0, len(WORDS), distractors)) for _ in range(6)]
    firsts = pa.array([name.split()[0] for name in names.to_pylist()])
    with_first = rng.random(distractors) < 0.1
    first = pc.if_else(pa.array(with_first), firsts.take(rng.integers(0, size.people, distractors)), columns[0])
    urls.append(_urls(base_url, "distractor", np.arange(distractors)))
    texts.append(pc.binary_join_element_wise(first, *columns[1:], " "))

    rows = size.caption_rows
    columns = {
        "URL": pa.concat_arrays(urls),
        "TEXT": pa.concat_arrays(texts),
        "WIDTH": np.full(rows, 512, np.int64),
        "HEIGHT": np.full(rows, 512, np.int64),
        "similarity": rng.uniform(0.3, 0.4, rows),
        "punsafe": rng.uniform(0.0, 0.1, rows),
        "pwatermark": rng.uniform(0.0, 0.2, rows),
    }
    for index, (column, value) in enumerate(FILTERS.values()):  # each filter fails a quarter of the filtered rows
        failing = np.arange(size.photos + index, size.photos + filtered, len(FILTERS))
        columns[column][failing] = value
    table = pa.table(columns)
    return table.take(pa.array(rng.permutation(rows)))


def write_captions(folder: str | Path, size: WorldSize, base_url: str) -> dict:
    """Writes the world's ``captions-*.parquet`` (replacing any there) and ``names.txt`` into ``folder``.

    Args:
        folder: the world's folder.
        size: the world's size.
        base_url: where the image folder (``write_images``) is served, e.g. ``http://127.0.0.1:8123/``.

    Returns:
        ``{"captions": [files], "names": file, "seconds": the time taken}``.
    """
    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("captions-*.parquet"):
        old.unlink()
    table = caption_table(size, base_url)
    captions = []
    for part, offset in enumerate(range(0, table.num_rows, size.rows_per_file)):
        path = folder / f"captions-{part:04d}.parquet"
        pq.write_table(table.slice(offset, size.rows_per_file), path, row_group_size=65_536)
        captions.append(str(path))
    names = folder / "names.txt"
    names.write_text("\n".join(person_names(size.people)) + "\n", encoding="utf-8")
    return {"captions": captions, "names": str(names), "seconds": time.perf_counter() - started}
