"""Face stack throughput on one CPU core: faces detected and embedded per second at 256² and 1024².

The real photos of the face_recognition 1.3.0 sdist (fetched once, see namespace.testing.real_faces), each fitted
into a square canvas of the side measured (a face that fills about a third of the frame, like a portrait). The
process is pinned to one core with one BLAS/OpenMP thread, so the figures are per core: a machine with C cores
running C processes does C times as many. Reports, per side and detector, the detection alone, the embedding alone
(5-point landmarks, the aligned chip, the ResNet) and the whole ``analyse`` call the data pipeline makes.

    OMP_NUM_THREADS=1 python benchmarks/face_throughput.py [--cnn true] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from flags import ArgumentParser
from PIL import Image

from namespace.faces import FaceConfig, load_face_embedder
from namespace.testing.real_faces import PHOTOS, real_face_photos

FULL_FACES = [name for name in PHOTOS if "partial" not in name]


def square(image: Image.Image, side: int) -> Image.Image:
    """The image fitted into a side × side canvas (aspect kept, grey borders)."""
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    scale = side / max(image.size)
    fitted = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    canvas.paste(fitted, ((side - fitted.width) // 2, (side - fitted.height) // 2))
    return canvas


def per_second(work, items: int, repeats: int) -> float:
    work()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    return items * repeats / (time.perf_counter() - start)


def measure(config: FaceConfig, side: int, images: list[Image.Image], repeats: int) -> dict:
    import numpy as np

    faces = load_face_embedder(config)
    detections = [faces.detect(image) for image in images]
    found = sum(bool(d) for d in detections)
    with_face = [(image, d[0]) for image, d in zip(images, detections, strict=True) if d]
    pixels = [np.asarray(image) for image, _ in with_face]
    return {
        "side": side,
        "detector": config.detector,
        "detection_side": config.detection_side,
        "faces_found": f"{found}/{len(images)}",
        "detect_per_s": per_second(lambda: [faces.detect(i) for i in images], len(images), repeats),
        "embed_per_s": per_second(lambda: faces._embed(pixels, [f for _, f in with_face]), len(with_face), repeats),
        "analyse_per_s": per_second(lambda: faces.analyse(images), len(images), repeats),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_boolean("--cnn", help="also measure dlib's CNN detector (slow on a CPU)")
    parser.add_argument("--json", help="write the figures here")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    folder = real_face_photos()
    photos = [Image.open(folder / name) for name in FULL_FACES]
    rows = []
    for side in (256, 1024):
        images = [square(photo, side) for photo in photos]
        configs = [FaceConfig()]
        if side == 1024:
            configs.append(FaceConfig(detection_side=1024))  # detection at full resolution
        if args.cnn:
            configs.append(FaceConfig(detector="cnn", upsample=0, detection_side=side))
        for config in configs:
            rows.append(measure(config, side, images, args.repeats))
    print("| side | detector | detection side | faces found | detect / s | embed / s | analyse / s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['side']}² | {row['detector']} | {row['detection_side']} | {row['faces_found']} | "
              f"{row['detect_per_s']:.2f} | {row['embed_per_s']:.2f} | {row['analyse_per_s']:.2f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"cores": 1, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
