"""Build scale: the whole ``magicnaming data build`` on one synthetic world at several sizes, per stage.

The world (``scale_world.py``) grows in people at a constant number of photos per person and caption rows per
photo; its tiny photos are served from 127.0.0.1 and the models are the tiny offline ones
(``configs/data/scale.yaml``). Each stage runs as its own process, ``magicnaming data STAGE --output OUT --config
CFG``, so each has its own wall time and peak memory:

- seconds per photo: the stage's wall time (process start included) over the world's photos;
- peak memory: the larger of the stage's largest process's exact peak RSS (``os.wait4``'s ``ru_maxrss``: the
  process and every descendant it reaped, each on its own, not summed; the stage is forked from a small launcher,
  since a forked process's peak starts at its parent's RSS) and the sampled peak of the summed PSS of
  its whole live process tree (``/proc``, every 0.1 s: img2dataset's and the embedders' worker processes together,
  shared pages counted once).

The ratios are the largest size's over the smallest's: ``peak_rss_ratio`` on the build's peak (the largest stage
peak), ``seconds_per_photo_ratio`` on the whole build's time; per stage too. The goal: both ≤ 1.5 (memory flat,
time linear). The images are written once per size under ``--work`` (by default ``magicnaming-build-scale`` in the
temporary folder, never the current one) and reused by later runs.

    python benchmarks/build_scale.py --sizes 1,4,16 --base_photos 3200 --rows_per_photo 100 \\
        --work /tmp/build-scale --json build_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from flags import ArgumentParser
from scale_world import WorldSize, write_captions, write_images

from namespace.data_pipeline.build import STAGES
from namespace.data_pipeline.local_server import serve_folder

ROOT = Path(__file__).resolve().parents[1]
STEPS = (*STAGES, "publish")  # publish: the build's last step, after its stages (the top-level files, the manifest)
GOAL = 1.5  # largest / smallest size: peak memory and seconds per photo
# kept between runs (the images are reused), outside the checkout and the current folder
DEFAULT_WORK = Path(tempfile.gettempdir()) / "magicnaming-build-scale"


def _descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (``/proc/PID/task/TID/children``)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack += [int(child) for child in handle.read().split()]
        except OSError:  # it ended between two reads
            continue
    return found


def tree_pss_kib(pid: int) -> int:
    """The summed proportional set size (KiB) of ``pid``'s live process tree: pages shared by forked workers
    count once in all, not once per worker as summed RSS would."""
    total = 0
    for process in _descendants(pid):
        try:
            with open(f"/proc/{process}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


class TreeSampler(threading.Thread):
    """Samples ``tree_pss_kib(pid)`` every ``interval`` seconds until stopped; ``peak_kib`` is the largest."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.peak_kib = max(self.peak_kib, tree_pss_kib(self.pid))


# Runs argv[2:] and writes its wait4 ru_maxrss (KiB) and exit code to argv[1]. A process's peak RSS starts at
# the RSS of the process it was forked from (Linux carries the forked memory's high-water mark through exec), so
# the stage is forked from this small launcher, not from the benchmark, which holds pyarrow and torch
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measure(command: list[str], log: Path) -> dict:
    """Runs ``command`` (output to ``log``, from ``log``'s folder); returns its seconds and peak memory (MiB).

    Raises:
        RuntimeError: the command failed (the tail of its log is in the message).
    """
    result = log.with_suffix(".rusage")
    with log.open("w") as handle:
        started = time.perf_counter()
        # run from the log's folder: ``python -m`` puts the working folder first on sys.path, and a checkout's own
        # ``namespace/`` there would shadow the installed package
        launcher = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(result), *command], stdout=handle,
                                    stderr=subprocess.STDOUT, cwd=log.parent)  # fmt: skip
        sampler = TreeSampler(launcher.pid)
        sampler.start()
        launcher.wait()
        seconds = time.perf_counter() - started
        sampler.stopped.set()
        sampler.join()
    max_rss_kib, code = (int(word) for word in result.read_text().split()) if result.is_file() else (0, -1)
    if launcher.returncode != 0 or code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command[3:5])} failed (exit {code}; log {log}):\n{tail}")
    largest_process, tree = max_rss_kib / 1024, sampler.peak_kib / 1024  # ru_maxrss: KiB on Linux
    return {"seconds": seconds, "max_process_rss_mib": largest_process, "tree_pss_mib": tree,
            "peak_rss_mib": max(largest_process, tree)}  # fmt: skip


def stage_command(step: str, output: Path, config: Path) -> list[str]:
    """``magicnaming data STAGE`` for a stage; ``publish`` is ``magicnaming data build`` over finished stages:
    it skips them all and writes the LaionCele files and ``manifest.json`` (``--only`` runs stop before that)."""
    # each stage runs from its log folder (``measure``): a relative path would name another place there
    assert output.is_absolute() and config.is_absolute(), (output, config)
    command = "build" if step == "publish" else step
    return [sys.executable, "-m", "namespace.cli", "data", command, "--output", str(output), "--config", str(config)]


def startup_seconds() -> float:
    """Wall time of a stage process that does nothing (``magicnaming data sample --help``: the same imports)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "namespace.cli", "data", "sample", "--help"], check=True,
                   stdout=subprocess.DEVNULL, cwd=Path.home())  # fmt: skip
    return time.perf_counter() - started


def stage_config(base: Path, captions: dict, path: Path) -> Path:
    """``base`` (a ``configs/data`` YAML) with the world's captions and names (``write_captions``) as its source,
    written to ``path``."""
    config = yaml.safe_load(base.read_text())
    config["data"]["source"] = {"captions": captions["captions"], "name_lists": [captions["names"]]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def measure_size(scale: int, args: argparse.Namespace) -> dict:
    """Writes (or reuses) the world of ``scale`` × the base size, builds it stage by stage; returns the figures."""
    size = WorldSize(photos=scale * args.base_photos, rows_per_photo=args.rows_per_photo,
                     photos_per_person=args.photos_per_person, image_size=args.image_size)  # fmt: skip
    world_folder = args.work / f"world-{scale}x"
    output, logs = args.work / f"build-{scale}x", args.work / f"logs-{scale}x"
    shutil.rmtree(output, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    print(f"[{scale}x] world: {size.photos:,} photos of {size.people:,} people, {size.caption_rows:,} caption rows",
          file=sys.stderr, flush=True)  # fmt: skip
    # the captions name the server's URL: the images are written (or found) first, then served, then named
    images = world_folder / f"images-{size.photos}-{size.photos_per_person}-{size.image_size}px"
    reused, started = images.is_dir(), time.perf_counter()
    write_images(world_folder, size, args.processes)
    world = {"images_seconds": time.perf_counter() - started, "images_reused": reused}
    with serve_folder(images) as url:
        captions = write_captions(world_folder, size, url)
        world["captions_seconds"] = captions["seconds"]
        print(f"[{scale}x] world: images {world['images_seconds']:.1f} s{' (reused)' if reused else ''}, "
              f"captions {captions['seconds']:.1f} s ({len(captions['captions'])} files)", file=sys.stderr,
              flush=True)  # fmt: skip
        config = stage_config(args.config, captions, args.work / f"build-{scale}x.yaml")
        stages = {}
        for stage in STEPS[: STEPS.index(args.until) + 1]:
            figures = measure(stage_command(stage, output, config), logs / f"{stage}.log")
            figures["seconds_per_photo"] = figures["seconds"] / size.photos
            stages[stage] = figures
            print(f"[{scale}x] {stage:<9} {figures['seconds']:8.1f} s  {1000 * figures['seconds_per_photo']:8.3f} "
                  f"ms/photo  peak {figures['peak_rss_mib']:7.0f} MiB (largest process "
                  f"{figures['max_process_rss_mib']:.0f}, tree {figures['tree_pss_mib']:.0f})",
                  file=sys.stderr, flush=True)  # fmt: skip
    seconds = sum(s["seconds"] for s in stages.values())
    net = seconds - args.startup * len(stages)
    summaries = {stage: json.loads((output / "work" / stage / "_stage.json").read_text())
                 for stage in stages if stage != "publish"}  # fmt: skip
    return {"scale": scale, "photos": size.photos, "people": size.people, "caption_rows": size.caption_rows,
            "world": world, "seconds": seconds, "seconds_per_photo": seconds / size.photos,
            "net_seconds_per_photo": net / size.photos, "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
            "stages": stages, "summaries": summaries}  # fmt: skip


def ratios(smallest: dict, largest: dict) -> dict:
    """Largest / smallest size: the build's and each stage's peak memory and seconds per photo."""

    def ratio(key: str, small: dict, large: dict) -> float:
        return large[key] / small[key]

    figures = (("peak_rss_ratio", "peak_rss_mib"), ("seconds_per_photo_ratio", "seconds_per_photo"))
    per_stage = {
        stage: {key: ratio(figure, smallest["stages"][stage], largest["stages"][stage]) for key, figure in figures}
        for stage in smallest["stages"]
    }
    return {
        "peak_rss_ratio": ratio("peak_rss_mib", smallest, largest),
        "seconds_per_photo_ratio": ratio("seconds_per_photo", smallest, largest),
        # the same without the stage processes' fixed start (imports), which flatters the small sizes
        "net_seconds_per_photo_ratio": ratio("net_seconds_per_photo", smallest, largest),
        "max_stage_peak_rss_ratio": max(r["peak_rss_ratio"] for r in per_stage.values()),
        "max_stage_seconds_per_photo_ratio": max(r["seconds_per_photo_ratio"] for r in per_stage.values()),
        "stage_ratios": per_stage,
    }


def table(sizes: list[dict], result: dict) -> str:
    """Per stage and size: milliseconds per photo and peak MiB, then the ratios."""
    head = "".join(f"{str(s['scale']) + 'x ms/photo':>15}{str(s['scale']) + 'x MiB':>11}" for s in sizes)
    lines = [f"{'stage':<10}{head}{'s/photo ratio':>15}{'MiB ratio':>11}"]
    for stage in sizes[0]["stages"]:
        cells = "".join(f"{1000 * s['stages'][stage]['seconds_per_photo']:15.3f}"
                        f"{s['stages'][stage]['peak_rss_mib']:11.0f}" for s in sizes)  # fmt: skip
        r = result["stage_ratios"][stage]
        lines.append(f"{stage:<10}{cells}{r['seconds_per_photo_ratio']:15.2f}{r['peak_rss_ratio']:11.2f}")
    cells = "".join(f"{1000 * s['seconds_per_photo']:15.3f}{s['peak_rss_mib']:11.0f}" for s in sizes)
    lines.append(f"{'build':<10}{cells}{result['seconds_per_photo_ratio']:15.2f}{result['peak_rss_ratio']:11.2f}")
    return "\n".join(lines)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,4,16", help="multiples of the base size, comma-separated")
    parser.add_argument("--base_photos", type=int, default=3200, help="photos at 1x (16x: 51,200)")
    parser.add_argument("--rows_per_photo", type=int, default=100, help="caption rows per photo (16x: 5.12M)")
    parser.add_argument("--photos_per_person", type=int, default=60)
    parser.add_argument("--image_size", type=int, default=32, help="side of the served photos")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/data/scale.yaml", help="the build's settings")
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="worlds, builds and logs (kept; default: %(default)s)"
    )
    parser.add_argument("--processes", type=int, default=2, help="processes writing the images")
    parser.add_argument("--until", choices=STEPS, default="publish", help="the last step run (default: all)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser


def resolve_paths(args: argparse.Namespace) -> argparse.Namespace:
    """``--work``, ``--config`` and ``--json`` made absolute against the current folder, before any stage runs: each
    stage runs from its own log folder, where a relative path would name another place."""
    args.work, args.config = args.work.expanduser().resolve(), args.config.expanduser().resolve()
    if args.json is not None:
        args.json = args.json.expanduser().resolve()
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked, with its paths absolute (``resolve_paths``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problems = []
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        problems.append(f"--sizes: expected comma-separated whole numbers such as 1,4,16, got {args.sizes!r}")
    else:
        if args.sizes[0] < 1:
            problems.append(f"--sizes: expected sizes of 1 or more, got {args.sizes}")
    if args.base_photos < 2 * args.photos_per_person:
        problems.append(f"--base_photos: expected at least 2 × --photos_per_person = {2 * args.photos_per_person} "
                        f"(two people), got {args.base_photos}")  # fmt: skip
    if not args.config.is_file():
        problems.append(f"--config: {str(args.config)!r} does not exist")
    if problems:
        parser.error("\n  ".join(problems))
    return resolve_paths(args)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    args.startup = startup_seconds()
    print(f"a stage process that does nothing takes {args.startup:.1f} s (counted in every stage's time)",
          file=sys.stderr)  # fmt: skip
    sizes = [measure_size(scale, args) for scale in args.sizes]
    result = {"sizes": sizes, "startup_seconds": args.startup, "goal": GOAL, "command": " ".join(["python", *sys.argv]),
              "config": str(args.config), "machine": machine()}  # fmt: skip
    if len(sizes) < 2:  # one size: its figures, no ratios
        result.update(peak_rss_ratio=None, seconds_per_photo_ratio=None, meets_goal=None)
        return _report(result, args.json)
    result.update(ratios(sizes[0], sizes[-1]))
    result["meets_goal"] = result["peak_rss_ratio"] <= GOAL and result["seconds_per_photo_ratio"] <= GOAL
    print(table(sizes, result))
    print(
        f"largest / smallest ({sizes[-1]['scale']}x / {sizes[0]['scale']}x): peak memory "
        f"{result['peak_rss_ratio']:.2f}, seconds per photo {result['seconds_per_photo_ratio']:.2f} "
        f"({result['net_seconds_per_photo_ratio']:.2f} without the processes' start; goal: both <= {GOAL})"
    )
    return _report(result, args.json)


def _report(result: dict, path: Path | None) -> dict:
    if path:
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
