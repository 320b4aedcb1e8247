"""Real face photos for tests: the seven test images of the ``face_recognition`` 1.3.0 source distribution.

Two people: ``obama`` (obama, obama2, obama3, two partial faces, and 32bit.png, a 32-bit RGBA copy of obama2) and
``biden`` (one photo). The sdist is fetched with ``pip download --no-deps --no-binary :all:`` into the cache
(``$MAGICNAMING_CACHE/face_recognition-1.3.0``) the first time and read from there after: the photos are never
committed, and the package is never installed (it would build dlib from source).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..files import cache_dir

SDIST = "face_recognition==1.3.0"
PHOTOS = {
    "obama.jpg": "obama",
    "obama2.jpg": "obama",
    "obama3.jpg": "obama",
    "32bit.png": "obama",
    "obama_partial_face.jpg": "obama",
    "obama_partial_face2.jpg": "obama",
    "biden.jpg": "biden",
}
PARTIAL = ("obama_partial_face.jpg", "obama_partial_face2.jpg")


def real_face_photos() -> Path:
    """The folder holding ``PHOTOS`` (fetching the sdist once; raises RuntimeError naming the command on failure)."""
    folder = cache_dir("face_recognition-1.3.0")
    if all((folder / name).is_file() for name in PHOTOS):
        return folder
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                   "--dest", download, SDIST]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        archives = sorted(Path(download).glob("face_recognition-1.3.0.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(f"could not fetch the real test photos ({' '.join(command)}):\n{result.stderr[-2000:]}")
        partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                name = Path(member.name).name
                if name in PHOTOS and member.isfile() and "/tests/test_images/" in member.name:
                    (partial / name).write_bytes(archive.extractfile(member).read())
        missing = sorted(set(PHOTOS) - {p.name for p in partial.iterdir()})
        if missing:
            raise RuntimeError(f"{SDIST}: the sdist holds no {', '.join(missing)} under tests/test_images/")
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        partial.rename(folder)
    return folder
