"""The embedded sample: a seeded, LAION-style caption set of fictional people, with its known truth.

It holds what real LAION metadata holds: single-name captions (some through aliases), captions naming two people,
captions with distractors (first names alone, names inside longer words), rows failing each filter, broken URLs
(404 and corrupt bytes), exact and near duplicates, off-identity images (a caption names one person, the photo shows
someone else), and people with too few images. Images are synthetic faces (``namespace.synthetic.synthetic_face``),
consistent per person and varied per photo, written as JPEG files to be served on 127.0.0.1. ``truth.json`` says
what every stage must find.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from namespace.synthetic import synthetic_face
from namespace.synthetic.people import cast_names

from .embedders import face_colors

TEMPLATES = [
    "{name} at the film festival premiere",
    "Portrait of {name}, 2019",
    "{name} smiles on the red carpet",
    "actor {name} photographed backstage",
    "A candid photo of {name} in Paris",
    "{name} attends the gala dinner",
    "Close-up of {name} during an interview",
    "{name} arrives at the awards show",
    "{name} - official photo",
    "Singer {name} performing live",
]


@dataclass
class SampleConfig:
    """Size of the embedded sample.

    Attributes:
        num_identities: people with enough clean photos to survive the ≥5 rule (cast identities 0 … n − 1: the
            people a miniature world with as many ``famous`` people knows by name).
        unknown_identities: people with as many photos, whom no miniature world knows (the probe's work: it must
            drop them); their ``truth.json`` entry has ``"famous": false``.
        few_image_identities: people with only 3–4 photos (dropped by the ≥5 rule).
        min_images: fewest clean photos of a surviving person.
        max_images: most clean photos of a surviving person.
        num_files: caption parquet files the rows are spread over.
        image_size: side of the served JPEGs.
        distractor_rows: captions naming nobody.
        seed: seeds everything.
    """

    num_identities: int = 8
    unknown_identities: int = 0
    few_image_identities: int = 2
    min_images: int = 6
    max_images: int = 8
    num_files: int = 3
    image_size: int = 96
    distractor_rows: int = 40
    seed: int = 0


def _jpeg(image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _row(url, text, width=512, height=512, similarity=0.33, punsafe=0.01, pwatermark=0.05):
    return {"URL": url, "TEXT": text, "WIDTH": width, "HEIGHT": height, "similarity": similarity,
            "punsafe": punsafe, "pwatermark": pwatermark}  # fmt: skip


class _Sample:
    """The sample as it is written: its caption rows, its truth, and its photos in ``folder/images``."""

    def __init__(self, folder: Path, base_url: str, config: SampleConfig) -> None:
        self.folder, self.images, self.config = folder, folder / "images", config
        self.base_url = base_url.rstrip("/") + "/"
        self.rng = random.Random(config.seed)
        self.rows: list[dict] = []
        self.truth: dict = {"identities": {}, "rows": {}, "broken_urls": {}, "exact_duplicates": [],
                            "near_duplicates": [], "off_identity": []}  # fmt: skip
        self.images.mkdir(parents=True, exist_ok=True)

    def add(self, reason: str, **row) -> None:
        """One caption row, counted in the truth under the reason it is there for."""
        self.rows.append(_row(**row))
        self.truth["rows"][reason] = self.truth["rows"].get(reason, 0) + 1

    def photo(self, person: int, variant: int, quality: int = 92) -> str:
        """Writes one synthetic photo of ``person``; returns its URL."""
        file = f"{person:03d}-{variant:02d}.jpg"
        self.write(file, _jpeg(synthetic_face(person, variant, self.config.image_size), quality))
        return self.base_url + file

    def write(self, file: str, data: bytes) -> str:
        """Writes ``data`` as ``images/FILE``; returns its URL."""
        (self.images / file).write_bytes(data)
        return self.base_url + file


def generate_sample(folder: str | Path, base_url: str, config: SampleConfig | None = None) -> dict:
    """Writes ``images/``, ``captions-*.parquet``, ``names.txt`` and ``truth.json`` into ``folder``.

    Args:
        folder: output folder (images are served from ``folder/images``).
        base_url: where ``folder/images`` is served, e.g. ``http://127.0.0.1:8123/``.
        config: the sample's size.

    Returns:
        The truth (also written to ``truth.json``).
    """
    sample = _Sample(Path(folder), base_url, config or SampleConfig())
    people, outsiders = _cast(sample)
    for index, name in enumerate(people):
        _add_person(sample, index, name)
        _add_traps(sample, index, name)
    _add_captions_without_one_name(sample, people, outsiders)
    return _write(sample, people)


def _cast(sample: _Sample) -> tuple[list[str], list[str]]:
    """The sample's people (surviving, unknown, with few photos, in that order) and the cast's other people."""
    config = sample.config
    people = cast_names(sample.rng)
    total_people = config.num_identities + config.unknown_identities + config.few_image_identities
    if total_people + 2 > len(people):
        raise ValueError(
            f"num_identities + unknown_identities + few_image_identities: at most {len(people) - 2}, got {total_people}"
        )
    return people[:total_people], people[total_people:]


def _add_person(sample: _Sample, index: int, name: str) -> None:
    """The person's own photos, each with a caption naming them (every third person also through an alias)."""
    config, rng = sample.config, sample.rng
    surviving = index < config.num_identities + config.unknown_identities
    count = rng.randint(config.min_images, config.max_images) if surviving else rng.randint(3, 4)
    alias = f"{name.split()[0][0]}. {name.split()[1]}" if index % 3 == 0 else None
    clean_urls = []
    for variant in range(count):
        url = sample.photo(index, variant)
        shown = alias if alias and variant == 1 else name
        sample.add("matched", url=url, text=rng.choice(TEMPLATES).format(name=shown))
        clean_urls.append(url)
    sample.truth["identities"][name] = {"alias": alias, "clean_urls": clean_urls, "survives": surviving}
    sample.truth["identities"][name]["famous"] = index < config.num_identities


def _add_traps(sample: _Sample, index: int, name: str) -> None:
    """The rows naming the person that a stage must drop: duplicates, a photo of someone else, broken links, rows
    failing the metadata filters, the same URL twice."""
    size, truth = sample.config.image_size, sample.truth
    if index % 2 == 0:  # an exact duplicate: the same bytes at another URL
        copy_url = sample.write(f"{index:03d}-00-copy.jpg", (sample.images / f"{index:03d}-00.jpg").read_bytes())
        sample.add("matched", url=copy_url, text=f"{name} (reposted)")
        truth["exact_duplicates"].append(copy_url)
    if index % 2 == 1:  # a near duplicate: resized and re-encoded
        near = synthetic_face(index, 0, size).resize((size - 8,) * 2)
        near_url = sample.write(f"{index:03d}-00-near.jpg", _jpeg(near.resize((size,) * 2), 70))
        sample.add("matched", url=near_url, text=f"{name} in a reposted photo")
        truth["near_duplicates"].append(near_url)
    if index % 3 == 1:  # the caption names this person, the photo shows someone clearly different
        url = sample.photo(_someone_else(index, size), 0)
        sample.add("matched", url=url, text=f"{name} with fans")
        truth["off_identity"].append(url)
    if index % 4 == 0:  # broken links: nothing at the URL; bytes that are not an image
        missing = sample.base_url + f"missing-{index}.jpg"
        sample.add("matched", url=missing, text=f"{name} at a press conference")
        corrupt = sample.write(f"corrupt-{index}.jpg", b"\xff\xd8\xff\xe0 this is not a jpeg " * 4)
        sample.add("matched", url=corrupt, text=f"{name} on holiday")
        truth["broken_urls"][missing] = "404"
        truth["broken_urls"][corrupt] = "decode"
    # rows that fail each filter: never downloaded
    sample.add("too_small", url=sample.photo(index, 90), text=f"{name} thumbnail", width=64, height=64)
    sample.add("low_similarity", url=sample.photo(index, 91), text=f"{name} banner", similarity=0.1)
    if index % 2 == 0:
        sample.add("unsafe", url=sample.photo(index, 92), text=f"{name} at the beach", punsafe=0.9)
        sample.add("watermark", url=sample.photo(index, 93), text=f"{name} stock photo", pwatermark=0.95)
    # the same URL listed twice, once more with another caption: one row survives
    sample.add("duplicate_url", url=truth["identities"][name]["clean_urls"][-1], text=f"{name} again")


def _someone_else(index: int, size: int) -> int:
    """A synthetic person whose face colours are far from person ``index``'s (cosine < 0.3)."""
    own = face_colors([synthetic_face(index, 0, size)])[0]
    return next(
        j
        for j in range(1000 + 100 * index, 1100 + 100 * index)
        if float(face_colors([synthetic_face(j, 0, size)])[0] @ own) < 0.3
    )


def _add_captions_without_one_name(sample: _Sample, people: list[str], outsiders: list[str]) -> None:
    """Captions naming two people, captions naming nobody (first names alone, names inside longer words), and one
    naming a person who is not in the name list."""
    for index in range(0, len(people) - 1, 2):  # two people in one caption
        a, b = people[index], people[index + 1]
        sample.add("several_names", url=sample.photo(index, 95), text=f"{a} and {b} at the gala")
    for index in range(sample.config.distractor_rows):
        first, last = people[index % len(people)].split()
        texts = [f"{first} river at sunset", f"the {last}s family house", f"{first}{last} fan club logo",
                 f"a cat named {first}", "a bowl of soup", f"{last} street in winter"]  # fmt: skip
        sample.add("no_name", url=sample.base_url + f"distractor-{index}.jpg", text=sample.rng.choice(texts))
    sample.add("no_name", url=sample.base_url + "outsider.jpg", text=f"{outsiders[0]} at the opening")


def _write(sample: _Sample, people: list[str]) -> dict:
    """The caption rows, shuffled, over ``num_files`` parquet files; ``names.txt`` (with three names no caption can
    match); ``truth.json``. Returns the truth."""
    folder, config, truth, rows = sample.folder, sample.config, sample.truth, sample.rows
    sample.rng.shuffle(rows)
    per_file = -(-len(rows) // config.num_files)
    files = []
    for part in range(config.num_files):
        path = folder / f"captions-{part:03d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[part * per_file : (part + 1) * per_file]), path)
        files.append(str(path))
    ambiguous = ["Mira", "Golden River", "The Best"]  # a single token; only common words (twice)
    lines = [
        f"{name} | {truth['identities'][name]['alias']}" if truth["identities"][name]["alias"] else name
        for name in people
    ]
    (folder / "names.txt").write_text("\n".join(lines + ambiguous) + "\n", encoding="utf-8")
    truth.update(files=files, names_file=str(folder / "names.txt"), ambiguous_names=ambiguous, config=asdict(config))
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
