"""The clean stage's face rules: what the face stack found in each photo, and which photos that rules out.

``face_facts`` turns one ``FaceAnalysis`` into per-photo facts (``work/clean/faces.parquet``);
``broken_face_rules`` says which photos break which rule. The rules run only when the identity embedder is
``face``: the facts come from the same analysis that gives the identity embeddings (one detection per photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from namespace.faces import FaceAnalysis

FACTS_SCHEMA = pa.schema(
    [
        ("faces", pa.int32()),
        ("face_size", pa.float32()),
        ("face_visible", pa.float32()),
        ("second_face_ratio", pa.float32()),
        ("face_box", pa.list_(pa.float32(), 4)),
        ("reason", pa.string()),
    ]
)


@dataclass
class FaceRules:
    """Which photos of a name the face stack rules out (each a reason in ``dropped.parquet``).

    Attributes:
        min_face_size: the largest face's side over the photo's shorter side (``Face.size_fraction``); below →
            ``face_too_small``. 0.1 is 38 px on LAION photos downloaded at 384 px: about the smallest face dlib's
            HOG detector finds unaided (40 px), already upscaled ~3× into its 150 px recognition chip; the real
            test portraits measure 0.19-0.50. 0 turns the rule off.
        max_second_face_ratio: the second-largest face's area over the largest's; at or above → ``several_faces``
            (a group photo captioned with one name: which face is the name's is a guess). Above 1: off.
        min_face_visible: the share of the largest face's box inside the photo (``Face.visible_fraction``); below →
            ``partial_face``. The real partial faces measure 0.77; 0 keeps partial faces.
    """

    min_face_size: float = 0.1
    max_second_face_ratio: float = 0.5
    min_face_visible: float = 0.9

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.min_face_size <= 1.0:
            problems.append(f"face_rules.min_face_size: expected a share in [0, 1], got {self.min_face_size}")
        if not self.max_second_face_ratio > 0.0:
            problems.append(f"face_rules.max_second_face_ratio: expected above 0, got {self.max_second_face_ratio}")
        if not 0.0 <= self.min_face_visible <= 1.0:
            problems.append(f"face_rules.min_face_visible: expected a share in [0, 1], got {self.min_face_visible}")
        if problems:
            raise ValueError("invalid face rules:\n  " + "\n  ".join(problems))


def face_facts(analysis: FaceAnalysis) -> pa.Table:
    """Per photo (``FACTS_SCHEMA``): faces found, and for the largest its size and visible share, the second's area
    over its area (0 with one face), its box; NaN and the analysis's reason where no face was found."""
    rows = []
    for faces, size, reason in zip(analysis.faces, analysis.sizes, analysis.reasons, strict=True):
        if not faces:
            nan = float("nan")
            rows.append({"faces": 0, "face_size": nan, "face_visible": nan, "second_face_ratio": nan,
                         "face_box": None, "reason": reason})  # fmt: skip
            continue
        largest = faces[0]
        second = faces[1].area / largest.area if len(faces) > 1 and largest.area > 0 else 0.0
        rows.append({"faces": len(faces), "face_size": largest.size_fraction(size),
                     "face_visible": largest.visible_fraction(size), "second_face_ratio": second,
                     "face_box": [float(v) for v in largest.box], "reason": None})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=FACTS_SCHEMA)


def broken_face_rules(facts: pa.Table, rules: FaceRules) -> dict[int, tuple[str, str]]:
    """Row → (reason, detail) of the first rule each photo breaks, in this order: ``no_face``, ``several_faces``,
    ``face_too_small``, ``partial_face``. Vectorised over the (n,) fact columns; details only for broken rows."""
    count = facts["faces"].to_numpy()
    size, visible, second = (facts[c].to_numpy(zero_copy_only=False) for c in ("face_size", "face_visible",
                                                                               "second_face_ratio"))  # fmt: skip
    why = facts["reason"].to_pylist()
    checks = [  # NaN facts (no face) compare False: a photo without a face breaks only the first rule
        ("no_face", count == 0, lambda r: why[r] or "no face found"),
        ("several_faces", second >= rules.max_second_face_ratio,
         lambda r: f"{count[r]} faces, second/largest area {second[r]:.2f} >= {rules.max_second_face_ratio:.2f}"),
        ("face_too_small", size < rules.min_face_size, lambda r: f"size {size[r]:.3f} < {rules.min_face_size:.3f}"),
        ("partial_face", visible < rules.min_face_visible,
         lambda r: f"visible {visible[r]:.2f} < {rules.min_face_visible:.2f}"),
    ]  # fmt: skip
    broken: dict[int, tuple[str, str]] = {}
    for reason, mask, detail in checks:
        for row in np.flatnonzero(mask):
            if int(row) not in broken:
                broken[int(row)] = (reason, detail(row))
    return broken
