"""Reference photos for the demo's identities, read from a LaionCele directory's validation shards.

Train identities are represented by their *held-out* photos (split ``heldout``: never trained on), unseen
identities by photos of people the encoder never saw (split ``val``). Photos are copied byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..files import slug
from ..laioncele import validation_samples


@dataclass
class Person:
    """A person of the sample with the reference photos written for them.

    Attributes:
        name: the person's (fictional) name.
        identity_id: their id in ``identities.parquet``.
        kind: ``train`` (held-out photos of a train identity) or ``unseen`` (a validation identity).
        photos: the reference photo files.
    """

    name: str
    identity_id: int
    kind: str
    photos: list[Path]

    @property
    def slug(self) -> str:
        return slug(self.name)


def write_references(laioncele: Path, folder: Path, train: int, unseen: int, per_person: int) -> list[Person]:
    """Writes up to ``per_person`` photos of the first ``train`` train and ``unseen`` unseen people into
    ``folder/<name>/``; raises ValueError when the directory holds fewer people than asked for."""
    by_person: dict[tuple[str, int], list[dict]] = {}
    for sample in validation_samples(laioncele):
        kind = {"heldout": "train", "val": "unseen"}.get(sample["split"])
        if kind:
            by_person.setdefault((kind, int(sample["identity_id"])), []).append(sample)
    people = []
    for kind, wanted, argument in (
        ("train", train, "num_train_identities"),
        ("unseen", unseen, "num_unseen_identities"),
    ):
        available = sorted(identity for k, identity in by_person if k == kind)
        if len(available) < wanted:
            raise ValueError(
                f"{argument}: expected at most {len(available)} (the {kind} people with validation photos in "
                f"{laioncele}), got {wanted}"
            )
        for identity in available[:wanted]:
            samples = by_person[kind, identity][:per_person]
            person = Person(samples[0]["name"], identity, kind, [])
            (folder / person.slug).mkdir(parents=True, exist_ok=True)
            for sample in samples:
                path = folder / person.slug / f"{sample['key']}.jpg"
                path.write_bytes(sample["jpg"])
                person.photos.append(path)
            people.append(person)
    return people
