"""Time per image: the plain SDXL pipeline, the MagicNaming plugin, and diffusers' IP-Adapter, side by side.

All three run at equal settings (same steps, size, guidance, seed) in one process, interleaved repeat by repeat.
The plugin's one-off encoder pass (reference images → identity) is timed apart: an identity is made once and
reused for every image. IP-Adapter gets random weights through ``load_ip_adapter(state_dict)`` and precomputed
image embeddings, so only its per-step cost (extra cross-attention keys/values in every attention layer) is timed.

    python benchmarks/plugin_overhead.py                       # tiny models, CPU
    python benchmarks/plugin_overhead.py --size full --device cuda --dtype fp16 --image_size 1024
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from flags import DTYPES, ArgumentParser

import namespace as ns
from namespace.inference import MagicNaming
from namespace.testing.ip_adapter import random_ip_adapter


def build(size: str, device: str, dtype: torch.dtype):
    """The pipeline, a name encoder that fits it, and a reference image for the one-off encoder pass."""
    from namespace.testing import synthetic_face, tiny_name_encoder, tiny_sdxl_pipeline

    if size == "tiny":
        pipe = tiny_sdxl_pipeline().to(device=device, dtype=dtype)
        encoder = tiny_name_encoder(pipe).to(device)
    else:
        from namespace.testing.full_size import random_sdxl_pipeline

        pipe = random_sdxl_pipeline(dtype=dtype, device=device)
        config = ns.NameEncoderConfig()
        for tower in config.towers:
            tower.pretrained = None  # the real towers' architecture with random weights: no download
            tower.precision = "fp16" if dtype == torch.float16 else "bf16" if dtype == torch.bfloat16 else "fp32"
        encoder = ns.NameEncoder(config).to(device)
        names = torch.randn(64, config.num_tokens, config.width)
        encoder.set_statistics(ns.NameSpaceStatistics.fit(names, rank=config.pca_rank))
    return pipe, encoder.eval(), synthetic_face(0, 0, 256)


def timed(run, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def measure(
    size: str = "tiny",
    device: str = "cpu",
    dtype: str = "fp32",
    steps: int = 20,
    image_size: int = 64,
    repeats: int = 15,
    budget_s: float | None = None,
) -> dict:
    """Times the three pipelines interleaved and returns the figures (the JSON this script prints).

    Args:
        size: ``tiny`` (offline tiny models) or ``full`` (SDXL base's architecture, random weights).
        device: a torch device (``cpu``, ``cuda``).
        dtype: ``fp32``, ``fp16`` or ``bf16``.
        steps: denoising steps per image.
        image_size: the side of the square images.
        repeats: timed rounds (each round makes one image per pipeline) at most.
        budget_s: stop after the round that passes this many seconds of timed rounds (at least 3 rounds), so that a
            suite fits its time; ``repeats`` holds the rounds actually made.
    """
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    torch.manual_seed(0)

    pipe, encoder, reference = build(size, device, torch_dtype)
    naming = MagicNaming(pipe, encoder)
    encode_seconds = [timed(lambda: naming.identity(reference), device) for _ in range(3)]
    identity = naming.identity(reference)

    ip_pipe = type(pipe)(**{**pipe.components, "unet": copy.deepcopy(pipe.unet)})  # its own UNet to patch
    ip_pipe.set_progress_bar_config(disable=True)
    embed_dim = 1280
    state = random_ip_adapter(ip_pipe.unet, embed_dim, torch.Generator().manual_seed(1))
    ip_pipe.load_ip_adapter(state, subfolder="", weight_name="random.bin", image_encoder_folder=None)
    image_embeds = [torch.randn(2, 1, embed_dim, generator=torch.Generator().manual_seed(2)).to(device, torch_dtype)]

    prompt = "a photo of a person riding a horse on the beach, golden hour"
    common = {"num_inference_steps": steps, "height": image_size, "width": image_size}
    common["guidance_scale"] = 5.0
    runs = {
        "plain": lambda: pipe(prompt, generator=torch.Generator().manual_seed(0), **common),
        "magicnaming": lambda: naming(prompt, identity, generator=torch.Generator().manual_seed(0), **common),
        "ip_adapter": lambda: ip_pipe(
            prompt, ip_adapter_image_embeds=image_embeds, generator=torch.Generator().manual_seed(0), **common
        ),
    }
    for run in runs.values():  # warm-up
        run()
    seconds = {name: [] for name in runs}
    start = time.perf_counter()
    for round_index in range(repeats):
        for name, run in runs.items():
            seconds[name].append(timed(run, device))
        if budget_s is not None and round_index >= 2 and time.perf_counter() - start > budget_s:
            break
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "size": size,
        "device": device,
        "dtype": dtype,
        "steps": steps,
        "image_size": image_size,
        "repeats": len(seconds["plain"]),
        "seconds_per_image_median": median,
        # ratios of runs made back to back in the same repeat (paired), then the median: robust to machine drift
        "magicnaming_over_plain": paired_ratio(seconds["magicnaming"], seconds["plain"]),
        "ip_adapter_over_plain": paired_ratio(seconds["ip_adapter"], seconds["plain"]),
        "magicnaming_one_off_encoder_pass_seconds": statistics.median(encode_seconds),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32", help="the pipeline's dtype")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", help="also write the results as JSON here")
    return parser


def print_result(result: dict, output: str | None) -> None:
    """Prints the figures as JSON, and writes them to ``output`` too when one is given."""
    print(json.dumps(result, indent=2))
    if output:
        with open(output, "w") as handle:
            json.dump(result, handle, indent=2)


def main() -> None:
    args = build_parser().parse_args()
    print_result(measure(args.size, args.device, args.dtype, args.steps, args.image_size, args.repeats), args.output)


if __name__ == "__main__":
    main()
