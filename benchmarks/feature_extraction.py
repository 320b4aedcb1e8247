"""Feature extraction throughput (images/s) of the frozen CLIP towers, the data pipeline's heaviest step.

Tiny towers on the CPU here; full-size ViT-L/14 + ViT-bigG/14 (random weights, no download) on a GPU, compared with
the FLOP limit: torch's FLOP counter gives 162.0 + 967.5 GFLOPs per 224² image (open_clip's model profile lists the
same), so a device of P dense TFLOP/s can embed at most P·1000 / 1129.5 images/s. The peak P is taken from
``--peak_tflops``, else from a table of NVIDIA data-centre GPUs' dense fp16/bf16 tensor-core peaks.

    python benchmarks/feature_extraction.py                                   # tiny, CPU
    python benchmarks/feature_extraction.py --size full --device cuda --dtype fp16 [--peak_tflops 989.4]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from flags import DTYPES, ArgumentParser
from torch.utils.flop_counter import FlopCounterMode

from namespace.encoder import NameEncoderConfig, TowerConfig
from namespace.encoder.towers import ImageTower, register_model_configs

# Dense (no sparsity) fp16/bf16 tensor-core TFLOP/s from NVIDIA's data sheets, matched against the CUDA device name
# (the longest key found in it wins: "H100 PCIe" before "H100").
PEAK_TFLOPS_16BIT = {
    "H100 PCIe": 756.5,
    "H100 NVL": 835.5,
    "H100": 989.4,  # SXM ("NVIDIA H100 80GB HBM3")
    "H200 NVL": 835.5,
    "H200": 989.4,
    "GH200": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
}


def device_peak_tflops(device: str, dtype: str) -> float | None:
    """The device's dense peak TFLOP/s at ``dtype`` from ``PEAK_TFLOPS_16BIT``; None when unknown (a CPU,
    fp32, or a GPU missing from the table)."""
    if not device.startswith("cuda") or dtype not in ("fp16", "bf16") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    matches = [key for key in PEAK_TFLOPS_16BIT if key in name]
    return PEAK_TFLOPS_16BIT[max(matches, key=len)] if matches else None


def gflops_per_image(config: TowerConfig) -> float:
    """The tower's forward GFLOPs for one image, counted by torch on the meta device: no weights, no time. (On real
    tensors, nn.MultiheadAttention's fused inference path hides its projections and attention from the counter.)"""
    import open_clip

    register_model_configs()
    visual = open_clip.create_model(config.model, pretrained=None, device="meta").visual
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        visual(torch.empty(1, 3, visual.image_size[0], visual.image_size[1], device="meta"))
    return counter.get_total_flops() / 1e9


def significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def measure(
    size: str = "tiny",
    device: str = "cpu",
    dtype: str = "fp32",
    batch: int = 64,
    batches: int = 10,
    peak_tflops: float | None = None,
    budget_s: float | None = None,
) -> dict:
    """Runs both towers on random (batch, 3, S, S) pixels and returns the figures (the JSON this script prints).

    Args:
        size: ``tiny`` (the test towers) or ``full`` (ViT-L/14 + ViT-bigG/14, random weights).
        device: a torch device (``cpu``, ``cuda``).
        dtype: the towers' dtype, ``fp32``, ``fp16`` or ``bf16``.
        batch: images per batch.
        batches: timed batches at most.
        peak_tflops: the device's dense peak at this dtype; default: ``device_peak_tflops``.
        budget_s: stop after the batch that passes this many timed seconds (at least 2 batches); ``batches`` holds
            the batches actually timed.
    """
    if size == "tiny":
        from namespace.testing import tiny_tower_configs

        configs = tiny_tower_configs()
    else:
        configs = NameEncoderConfig().towers
        for config in configs:
            config.pretrained = None  # the architecture with random weights: same cost, no download
    for config in configs:
        config.precision = dtype  # the tower config's name for its dtype
    towers = [ImageTower(config).to(device) for config in configs]
    pixels = [torch.rand(batch, 3, t.visual.image_size[0], t.visual.image_size[1], device=device) for t in towers]
    gflops = sum(gflops_per_image(config) for config in configs)

    def step():
        for tower, images in zip(towers, pixels, strict=True):
            tower(images)

    def now() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    step()  # warm-up
    start, timed = now(), 0
    while timed < batches:
        step()
        timed += 1
        if budget_s is not None and timed >= 2 and now() - start > budget_s:
            break
    rate = batch * timed / (now() - start)
    result = {
        "size": size,
        "device": device,
        "dtype": dtype,
        "batch": batch,
        "batches": timed,
        "images_per_second": significant(rate),
        "gflops_per_image": significant(gflops),
        "achieved_tflops": significant(rate * gflops / 1000),
    }
    peak = peak_tflops or device_peak_tflops(device, dtype)
    if peak:
        result["peak_tflops"] = peak
        result["flop_limit_images_per_second"] = significant(peak * 1000 / gflops)
        result["share_of_flop_limit"] = significant(rate * gflops / 1000 / peak, 3)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, renamed={"--precision": "--dtype"})
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32", help="the towers' dtype")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--peak_tflops", type=float, help="the device's dense peak TFLOP/s at this dtype")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    result = measure(args.size, args.device, args.dtype, args.batch, args.batches, args.peak_tflops)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
