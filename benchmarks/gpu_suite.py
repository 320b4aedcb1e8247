"""Every GPU benchmark of the project in one command, at full size with random weights: one JSON holding the figures
of every GPU row of the README, with the device, the library versions and the date.

Parts, each run in this process by its own script's ``measure`` and each with a time budget (its timed loop stops
once past it; building the random full-size models on the CPU comes on top, about 3 minutes of the whole), so that
the whole should take about 7 minutes on one H100 and stay under 10 (an estimate: not yet run on a GPU; the JSON
records each part's seconds):

1. ``plugin_overhead``: plain SDXL vs MagicNaming vs IP-Adapter at 1024², 30 steps, fp16 (``plugin_overhead.py``);
2. ``towers``: ViT-L/14 + ViT-bigG/14 throughput against the FLOP limit, fp16 (``feature_extraction.py``);
3. ``training``: the feature cache vs streaming images, bf16-mixed, batch 256 (``training_throughput.py``).

A part that fails is recorded with its error and the others still run; the exit status is then 1. The JSON is
rewritten after each part, so an interrupted run keeps the finished parts.

    python benchmarks/gpu_suite.py [--json gpu_suite.json] [--markdown true] [--peak_tflops P]
    python benchmarks/gpu_suite.py --device cpu --tiny true --json smoke.json   # tiny offline models, seconds (CI)
    python benchmarks/gpu_suite.py --from_json gpu_suite.json                   # the README rows of an earlier run

Without ``--json`` the JSON goes to ``gpu_suite.json`` in a new temporary folder (its path is printed last), so that
a run writes nothing where it was started.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts, also when imported
from flags import ArgumentParser

PARTS = ("plugin_overhead", "towers", "training")
MODULES = {"plugin_overhead": "plugin_overhead", "towers": "feature_extraction", "training": "training_throughput"}
TARGET_SECONDS = 600  # the whole suite, on one H100
# measure()'s keyword arguments per part, but the device; budget_s bounds each timed loop (each path, for training)
FULL = {
    "plugin_overhead": {"size": "full", "dtype": "fp16", "steps": 30, "image_size": 1024, "repeats": 10,
                        "budget_s": 60},
    "towers": {"size": "full", "dtype": "fp16", "batch": 256, "batches": 40, "budget_s": 20},
    # 2048 photos: 8 shards of 256, one per streaming worker
    "training": {"size": "full", "precision": "bf16-mixed", "batch": 256, "steps": 20,
                 "warmup": 3, "workers": 8, "photos": 2048, "random_cache_features": True, "budget_s": 30},
}  # fmt: skip
TINY = {
    "plugin_overhead": {"size": "tiny", "dtype": "fp32", "steps": 2, "image_size": 32, "repeats": 3},
    "towers": {"size": "tiny", "dtype": "fp32", "batch": 16, "batches": 3},
    "training": {"size": "tiny", "precision": "32-true", "batch": 16, "steps": 2, "warmup": 1,
                 "workers": 0, "photos": 64, "random_cache_features": True},
}  # fmt: skip
# the numbers the README's rows take from each part's result (all positive when the part succeeded)
FIGURES = {
    "plugin_overhead": ("plain_seconds_per_image", "magicnaming_seconds_per_image", "ip_adapter_seconds_per_image",
                        "magicnaming_over_plain", "ip_adapter_over_plain", "magicnaming_one_off_encoder_pass_seconds"),
    "towers": ("images_per_second", "gflops_per_image", "achieved_tflops", "peak_tflops",
               "flop_limit_images_per_second", "share_of_flop_limit"),
    "training": ("cached_photos_per_second", "streaming_photos_per_second", "cached_over_streaming"),
}  # fmt: skip
LIBRARIES = ("magicnaming", "torch", "diffusers", "transformers", "open_clip_torch", "lightning")


def check_device(device: str, tiny: bool, cuda_available: bool) -> None:
    """Refuses a full-size run without CUDA: it would take hours on a CPU and measure nothing the README needs."""
    if device == "cuda" and not cuda_available:
        raise ValueError(
            "--device cuda: no CUDA device found (torch.cuda.is_available() is False). The suite measures the GPU "
            "figures: run it on a machine with an NVIDIA GPU, or pass --device cpu --tiny true for the offline smoke "
            "run"
        )
    if device == "cpu" and not tiny:
        raise ValueError(
            "--device cpu: expected --tiny true with it (the full-size models take hours on a CPU), got none"
        )


def environment(device: str) -> dict:
    """The device's name, the library versions and the date, for the JSON's header."""
    import torch

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        memory = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    else:
        name, memory = f"{platform.machine()} CPU, {os.cpu_count()} cores", None
    return {
        "device": device,
        "device_name": name,
        "device_memory_gib": memory,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def figures(part: str, result: dict) -> dict:
    """The README's numbers out of one part's ``measure`` result (those it lacks are left out)."""
    if part == "plugin_overhead":
        result = {**result, **{f"{k}_seconds_per_image": v for k, v in result["seconds_per_image_median"].items()}}
    return {key: result[key] for key in FIGURES[part] if result.get(key) is not None}


def run_part(part: str, work: Callable[[], dict]) -> dict:
    """Runs one part and returns its record: status, seconds, the result and its figures, or the error (never
    raises, so that the next part still runs). Frees the part's GPU memory afterwards and records its peak."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        result = work()
        record = {"status": "ok", "result": result, "figures": figures(part, result)}
    except Exception as error:  # a failed part is data: recorded, and the suite goes on
        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    record["seconds"] = round(time.perf_counter() - start, 1)
    gc.collect()
    if cuda:
        record["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.empty_cache()
    return record


def part_settings(part: str, tiny: bool, device: str, peak_tflops: float | None) -> dict:
    """The keyword arguments of the part's ``measure``: its plan, on ``device``."""
    settings = dict((TINY if tiny else FULL)[part])
    if part == "training":
        settings["accelerator"] = "gpu" if device == "cuda" else "cpu"
    else:
        settings["device"] = device
    if part == "towers" and peak_tflops:
        settings["peak_tflops"] = peak_tflops
    return settings


def run_suite(
    device: str, tiny: bool, json_path: Path, parts: tuple[str, ...] = PARTS, peak_tflops: float | None = None
) -> dict:
    """Runs ``parts`` one after the other and writes the JSON after each; returns it."""
    from namespace.files import atomic_write
    from namespace.progress import Steps

    report = {"suite": "gpu_suite", "size": "tiny" if tiny else "full", **environment(device), "parts": {}}
    steps, start = Steps(len(parts)), time.perf_counter()
    for part in parts:
        settings = part_settings(part, tiny, device, peak_tflops)
        budget = f", timed loop within {settings['budget_s']} s" if "budget_s" in settings else ""
        steps.start(f"{MODULES[part]}.py{budget}")
        # imported inside the part, so that a script that no longer imports fails its part, not the suite
        record = run_part(part, lambda: importlib.import_module(MODULES[part]).measure(**settings))  # noqa: B023
        report["parts"][part] = {"settings": settings, **record}
        print(f"      {part}: {record['status']} {json.dumps(record.get('figures', {}))}", file=sys.stderr, flush=True)
        report["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write(json_path, lambda path: path.write_text(json.dumps(report, indent=2) + "\n"))
    failed = [part for part in parts if report["parts"][part]["status"] != "ok"]
    steps.done(f"suite: {len(parts) - len(failed)}/{len(parts)} parts in {report['seconds']} s → {json_path}")
    if report["seconds"] > TARGET_SECONDS and not tiny:
        print(f"suite: over the {TARGET_SECONDS} s target: lower the budgets in FULL", file=sys.stderr, flush=True)
    return report


def number(value: float, decimals: int = 1) -> str:
    return f"{value:,.{decimals}f}"


def plugin_rows(part: dict, full: bool) -> list[str]:
    settings, found = part["settings"], part["figures"]
    model = "SDXL base 1.0's architecture" if full else "the tiny SDXL"
    rows = [
        f"**Cost per image**, {model} with random weights, {settings['image_size']}², {settings['steps']} steps, "
        f"{settings['dtype']}, guidance 5 (median of {part['result']['repeats']} interleaved rounds):",
        "",
        "| | seconds / image (median) | ratio to plain |",
        "| --- | --- | --- |",
        f"| plain pipeline | {number(found['plain_seconds_per_image'], 3)} | 1 |",
        f"| MagicNaming | {number(found['magicnaming_seconds_per_image'], 3)} | "
        f"{number(found['magicnaming_over_plain'], 3)} |",
        f"| IP-Adapter | {number(found['ip_adapter_seconds_per_image'], 3)} | "
        f"{number(found['ip_adapter_over_plain'], 3)} |",
        "",
        f"MagicNaming's one-off encoder pass: {number(found['magicnaming_one_off_encoder_pass_seconds'], 3)} s per "
        "identity.",
    ]
    return rows


def tower_rows(part: dict, full: bool) -> list[str]:
    settings, found = part["settings"], part["figures"]
    towers = "ViT-L/14 + ViT-bigG/14" if full else "the tiny towers"
    limit = ("flop_limit_images_per_second", "share_of_flop_limit")
    if all(key in found for key in limit):
        against = f"{number(found['flop_limit_images_per_second'])} | {number(100 * found['share_of_flop_limit'])}% |"
        peak = f"{found['peak_tflops']:g}"
    else:
        against, peak = "unknown | unknown |", "unknown (rerun with --peak_tflops P)"
    return [
        f"**Towers**, {towers} with random weights, {settings['dtype']}, batch {settings['batch']}:",
        "",
        "| images / s | GFLOPs / image | achieved TFLOP/s | peak TFLOP/s | FLOP limit, images / s | share of limit |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {number(found['images_per_second'])} | {number(found['gflops_per_image'], 4 if not full else 1)} | "
        f"{number(found['achieved_tflops'], 4 if not full else 1)} | {peak} | {against}",
    ]


def training_rows(part: dict, full: bool, device_name: str) -> list[str]:
    settings, found, result = part["settings"], part["figures"], part["result"]
    towers = "ViT-L/14 + ViT-bigG/14 (random weights" if full else "tiny towers (random weights"
    setting = (
        f"{towers}, {settings['precision']}, towers {result['tower_precision']}), cache at batch "
        f"{result['cached_batch']}, streaming at batch {result['streaming_batch']}, "
        f"{result['streaming_workers']} workers, {device_name}"
    )
    return [
        "**Training throughput**, a row for the README's table:",
        "",
        "| setting | cache, photos/s | streaming, photos/s | cache / streaming |",
        "| --- | --- | --- | --- |",
        f"| {setting} | {number(found['cached_photos_per_second'])} | {number(found['streaming_photos_per_second'])} | "
        f"{number(found['cached_over_streaming'])}× |",
    ]


def markdown(report: dict) -> str:
    """The README's GPU rows filled in from a suite's JSON, ready to paste."""
    full = report["size"] == "full"
    versions = report["versions"]
    lines = [
        f"Measured by `python benchmarks/gpu_suite.py` on {report['device_name']} ({report['date'][:10]}; torch "
        f"{versions['torch']}, CUDA {report['cuda']}, diffusers {versions['diffusers']}, magicnaming "
        f"{versions['magicnaming']}; {report['seconds']} s in all).",
    ]
    render = {
        "plugin_overhead": lambda part: plugin_rows(part, full),
        "towers": lambda part: tower_rows(part, full),
        "training": lambda part: training_rows(part, full, report["device_name"]),
    }
    for name, part in report["parts"].items():
        lines.append("")
        if part["status"] == "ok":
            lines += render[name](part)
        else:
            lines.append(f"**{name}**: failed ({part['error']}).")
    return "\n".join(lines)


def json_destination(argument: str | None) -> Path:
    """``--json`` as given, else ``gpu_suite.json`` in a new temporary folder (never the current folder)."""
    return Path(argument) if argument else Path(tempfile.mkdtemp(prefix="gpu_suite-")) / "gpu_suite.json"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="pick a GPU with CUDA_VISIBLE_DEVICES"
    )
    parser.add_boolean("--tiny", help="the tiny offline models (a smoke run, not figures)")
    parser.add_argument("--json", help="where to write the figures (default: a new temporary folder)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="a subset of the parts")
    parser.add_argument("--peak_tflops", type=float, help="the GPU's dense fp16 peak, if the built-in table lacks it")
    parser.add_boolean("--markdown", help="print the README's rows filled in, after the run")
    parser.add_argument("--from_json", help="print the README's rows of an earlier run's JSON, and run nothing")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.from_json:
        print(markdown(json.loads(Path(args.from_json).read_text())))
        return
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f"--peak_tflops: expected a positive number, got {args.peak_tflops}")
    cuda_available = False
    if args.device == "cuda":  # torch is imported only when asked for: a refused --device cpu costs nothing
        import torch

        cuda_available = torch.cuda.is_available()
    try:
        check_device(args.device, args.tiny, cuda_available)
    except ValueError as error:
        parser.error(str(error))
    report = run_suite(args.device, args.tiny, json_destination(args.json), tuple(args.parts), args.peak_tflops)
    if args.markdown:
        print(markdown(report))
    sys.exit(1 if any(part["status"] != "ok" for part in report["parts"].values()) else 0)


if __name__ == "__main__":
    main()
