"""Feature extraction throughput (images/s) of the frozen CLIP towers, the data pipeline's heaviest step.

Tiny towers on the CPU here; full-size ViT-L/14 + ViT-bigG/14 (random weights, no download) on a GPU, compared with
the FLOP limit: 162 + 967.5 GFLOPs per 224² image, so a device of P dense TFLOP/s can embed at most
P·1000 / 1129.5 images/s.

    python benchmarks/feature_extraction.py                                   # tiny, CPU
    python benchmarks/feature_extraction.py --size full --device cuda --precision bf16 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from namespace.encoder import NameEncoderConfig
from namespace.encoder.towers import ImageTower

GFLOPS_PER_IMAGE = {"ViT-L-14": 162.0, "ViT-bigG-14": 967.5}  # at 224², as open_clip's model profile lists them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak at this precision")
    args = parser.parse_args()
    if args.size == "tiny":
        from namespace.testing import tiny_tower_configs

        configs = tiny_tower_configs()
    else:
        configs = NameEncoderConfig().towers
        for config in configs:
            config.pretrained = None  # the architecture with random weights: same cost, no download
    for config in configs:
        config.precision = args.precision
    towers = [ImageTower(config).to(args.device) for config in configs]
    pixels = [
        torch.rand(args.batch, 3, t.visual.image_size[0], t.visual.image_size[1], device=args.device) for t in towers
    ]

    def step():
        for tower, batch in zip(towers, pixels, strict=True):
            tower(batch)

    step()  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.batches):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    rate = args.batch * args.batches / (time.perf_counter() - start)
    result = {
        "size": args.size,
        "device": args.device,
        "precision": args.precision,
        "images_per_second": round(rate, 1),
    }
    if args.size == "full":
        gflops = sum(GFLOPS_PER_IMAGE[c.model] for c in configs)
        result["achieved_tflops"] = round(rate * gflops / 1000, 1)
        if args.peak_tflops:
            result["flop_limit_images_per_second"] = round(args.peak_tflops * 1000 / gflops, 1)
            result["share_of_flop_limit"] = round(rate * gflops / 1000 / args.peak_tflops, 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
