"""``magicnaming faces check|compare|calibrate``: the face stack on your own photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..images import folder_images
from .calibration import Calibration, calibrate_same_person_threshold
from .config import FaceConfig
from .embedder import load_face_embedder


def _paths(images: list[Path] | Path) -> list[Path]:
    listed = images if isinstance(images, list) else [images]
    paths = []
    for index, path in enumerate(listed):
        argument = f"--images[{index}]" if isinstance(images, list) else "--images"
        if Path(path).is_dir():
            paths += folder_images(Path(path), argument)
        elif not Path(path).is_file():
            raise FileNotFoundError(f"{argument}: no such file or folder: {path}")
        else:
            paths.append(Path(path))
    return paths


def check(images: list[Path] | Path, face: FaceConfig | None = None) -> list[dict]:
    """Lists the faces found in each photo: how many, the largest one's box, size and how much of it is visible.

    Args:
        images: photos, or folders of photos.
        face: the face stack's settings (backend, detector, upsample, ...).
    """
    paths = _paths(images)
    faces = load_face_embedder(face or FaceConfig())
    analysis = faces.analyse(paths, argument="--images")
    rows = []
    for path, found, size, reason in zip(paths, analysis.faces, analysis.sizes, analysis.reasons, strict=True):
        row = {"image": str(path), "faces": len(found), "size": list(size)}
        if found:
            largest = found[0]
            row |= {"box": [round(v) for v in largest.box], "score": round(largest.score, 3),
                    "size_fraction": round(largest.size_fraction(size), 3),
                    "visible_fraction": round(largest.visible_fraction(size), 3)}  # fmt: skip
        else:
            row["reason"] = reason
        rows.append(row)
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    return rows


def compare(images: list[Path] | Path, face: FaceConfig | None = None) -> np.ndarray:
    """Prints the cosine of every pair of photos' largest faces, and whether the face stack takes them as one person
    (at ``face.same_person_threshold``).

    Args:
        images: two or more photos, or folders of photos.
        face: the face stack's settings.
    """
    paths = _paths(images)
    if len(paths) < 2:
        raise ValueError(f"--images: expected at least two photos to compare, got {len(paths)}")
    faces = load_face_embedder(face or FaceConfig())
    embeddings = faces.embed(paths, missing="raise")
    cosine = embeddings @ embeddings.T
    threshold = faces.same_person_threshold
    print(f"same person at cosine >= {threshold:.3f} ({faces.description})")
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            verdict = "same person" if cosine[i, j] >= threshold else "different people"
            print(f"{cosine[i, j]:.3f}  {verdict:<16}  {paths[i].name}  {paths[j].name}")
    return cosine


def calibrate(photos: Path, face: FaceConfig | None = None) -> Calibration:
    """Calibrates the same-person threshold on labelled photos: one subfolder per person. Set the printed threshold
    as ``face.same_person_threshold`` (``clean.face`` in a data config).

    Args:
        photos: a folder with one subfolder of photos per person (at least two people, one with two photos).
        face: the face stack's settings.
    """
    people = sorted(p for p in Path(photos).iterdir() if p.is_dir()) if Path(photos).is_dir() else []
    if len(people) < 2:
        raise ValueError(f"--photos: expected a folder with one subfolder per person (2 or more), got {photos}")
    paths, labels = [], []
    for person in people:
        found = folder_images(person, f"--photos/{person.name}")
        paths += found
        labels += [person.name] * len(found)
    faces = load_face_embedder(face or FaceConfig())
    calibration = calibrate_same_person_threshold(faces.embed(paths), labels)
    split = "separated" if calibration.separated else "overlapping: the equal-error cosine"
    print(f"threshold {calibration.threshold:.3f}  (same person >= {calibration.same_min:.3f} over "
          f"{calibration.same_pairs} pairs, different people <= {calibration.different_max:.3f} over "
          f"{calibration.different_pairs} pairs; {split})")  # fmt: skip
    return calibration


def main(argv: list[str], prog: str = "magicnaming faces") -> int:
    from ..command_line import run_command

    run_command([check, compare, calibrate], argv, prog, description=__doc__)
    return 0


__all__ = ["calibrate", "check", "compare", "main"]
