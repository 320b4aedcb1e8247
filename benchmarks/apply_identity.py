"""Time per conditioning: the ComfyUI pack's Apply Identity against the plugin's own name step, side by side.

Both do the same work on SDXL-sized tensors (width 2048, N = 8): make the name (eq. 4, 5) and put it after the start
token (eq. 1). Apply Identity (``namespace.inference.conditioning.apply_identity``) takes ComfyUI's CONDITIONING
(1, 77·k, 2048) with ``pooled_output``; the plugin's step is ``MagicNaming.name`` then ``namespace.prepend`` on
diffusers' (1, 77, 2048) ``prompt_embeds``, which is all the plugin adds to ``encode_prompt`` per prompt. The two
run interleaved, round by round; the figure is their paired ratio (median), and each one's median time.

    python benchmarks/apply_identity.py                  # CPU, chunks 1, 2 and 3
    python benchmarks/apply_identity.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics

import torch
from flags import ArgumentParser
from plugin_overhead import print_result, timed

import namespace as ns
from namespace.inference.conditioning import apply_identity, identity_name

WIDTH, NUM_TOKENS, CHUNK = 2048, 8, 77


def measure(device: str = "cpu", chunks: tuple[int, ...] = (1, 2, 3), repeats: int = 200) -> dict:
    """Median seconds per conditioning of Apply Identity (per chunk count) and of the plugin's name step, and the
    paired ratio Apply Identity / plugin step (the JSON this script prints).

    Args:
        device: a torch device (``cpu``, ``cuda``).
        chunks: the conditioning's 77-token chunks k (a prompt of up to 75·k tokens).
        repeats: timed rounds, each timing both once.
    """
    generator = torch.Generator().manual_seed(0)
    names = torch.randn(64, NUM_TOKENS, WIDTH, generator=generator)
    stats = ns.NameSpaceStatistics.fit(names.to(device), rank=8)
    identity = ns.Identity(torch.randn(NUM_TOKENS, WIDTH, generator=generator), label="person")
    results = {"device": device, "width": WIDTH, "num_tokens": NUM_TOKENS, "repeats": repeats, "chunks": {}}
    for k in chunks:
        cond = torch.randn(1, CHUNK * k, WIDTH, generator=generator).to(device)
        conditioning = [[cond, {"pooled_output": torch.randn(1, 1280, generator=generator).to(device)}]]
        embeds = cond[:, :CHUNK].clone()
        runs = {
            "apply_identity": lambda conditioning=conditioning: apply_identity(conditioning, identity, stats),
            "plugin_name_step": lambda embeds=embeds: ns.prepend(embeds, identity_name(identity, stats), [12]),
        }
        for run in runs.values():  # warm-up
            run()
        seconds = {name: [] for name in runs}
        for _ in range(repeats):
            for name, run in runs.items():
                seconds[name].append(timed(run, device))
        ratio = statistics.median(
            a / p for a, p in zip(seconds["apply_identity"], seconds["plugin_name_step"], strict=True)
        )
        results["chunks"][k] = {name: statistics.median(values) for name, values in seconds.items()}
        results["chunks"][k]["apply_identity_over_plugin_name_step"] = ratio
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", help="also write the results as JSON here")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    print_result(measure(args.device, tuple(args.chunks), args.repeats), args.output)


if __name__ == "__main__":
    main()
