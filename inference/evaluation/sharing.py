"""Sharing an evaluation's drawing over several processes: the ranks of a ``torchrun`` launch, or one process per
``--devices`` entry spawned here (as the data pipeline's probe spawns one per device).

Process ``rank`` of ``world`` draws the groups ``rank::world`` of the whole list of (method, setting, person) groups of
batches (``drawing.draw_images``), cut once from the whole job list: a batch, and so every image, is the same whoever
draws it, and a method that trains per person (``refined``, ``lora``) trains each person in one process only. Then
one process scores: rank 0 of a ``torchrun`` launch, after a barrier; the parent of ``--devices`` children, after
joining them.

The barriers of a ``torchrun`` launch are ``torch.distributed``'s, over a gloo group (CPU sockets, so CPU ranks work
too, and no tensor moves: it only waits). Rather than a file-based barrier: torchrun already gives the rendezvous,
notices a rank that fails and stops the others (a file barrier would wait for a dead rank until its timeout), and no
marker file is left behind to be mistaken by a later run for a finished rank. The group's timeout is long
(``BARRIER_TIMEOUT``): after its own share a rank waits for the slowest, which may have much more left to draw when a
resumed run finds one rank's images finished and another's not.

Memory: nothing beyond what each process draws with (``run.py``); while the ``--devices`` children draw, their parent
holds only the scorers (loaded first, so that one that cannot load fails before any drawing) and the reference photos,
not the pipeline or the encoder. ``image_stamps`` holds one small tuple per image file already written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

BARRIER_TIMEOUT = timedelta(days=2)  # longer than the paper-scale run on one device (about 10 GPU-hours)


@dataclass(frozen=True)
class Share:
    """Which part of the batches a process draws, and on which device.

    Attributes:
        rank: this process, 0 … world - 1.
        world: the processes sharing the drawing.
        device: where this process draws (``cpu``, ``cuda:1``, ...).
        torchrun: True when ``torchrun`` started the processes (they wait at barriers), False when spawned here (or
            a single process).
    """

    rank: int
    world: int
    device: str
    torchrun: bool = False

    @property
    def label(self) -> str:
        """How this process names itself in its progress bar (empty for a single process)."""
        return f"{self.rank + 1}/{self.world} on {self.device}" if self.world > 1 else ""


def check_devices(devices: list[str] | None) -> None:
    """``--devices``: None, or a non-empty list of devices torch can parse (whether each exists shows on use), and
    not under ``torchrun``, whose processes already share the drawing.

    Raises:
        ValueError: naming ``--devices`` and what is wrong.
    """
    if devices is None:
        return
    if not devices:
        raise ValueError("--devices: expected one device per drawing process ([cuda:0, cuda:1], [cpu, cpu]), got an "
                         "empty list (leave it out for one process on --device)")  # fmt: skip
    unparsed = []
    for device in devices:
        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            unparsed.append(device)
    if unparsed:
        raise ValueError(f"--devices: expected devices torch can parse (cpu, cuda, cuda:1, ...), got {unparsed}")
    if _torchrun_world() > 1:
        raise ValueError(f"--devices: this process was started by torchrun (WORLD_SIZE={_torchrun_world()}), whose "
                         "processes already share the drawing, each on --device; leave --devices out")  # fmt: skip


def _torchrun_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def torchrun_share(device: str) -> Share | None:
    """This process's share under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set), or None (a single
    process, or ``--devices``). ``device`` ``auto`` or ``cuda`` becomes ``cuda:LOCAL_RANK`` on a machine with CUDA."""
    world = _torchrun_world()
    if world <= 1:
        return None
    from namespace.model_names import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return Share(int(os.environ["RANK"]), world, str(resolved), torchrun=True)


@contextmanager
def process_group(share: Share | None) -> Iterator[None]:
    """Inside the block, a gloo group joins the ``torchrun`` launch's processes (``barrier``); nothing otherwise."""
    if share is None or not share.torchrun:
        yield
        return
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        if dist.is_initialized():  # left by ``last_barrier`` on the way that did not fail
            dist.destroy_process_group()


def barrier(share: Share | None) -> None:
    """Waits for every process of a ``torchrun`` launch; returns at once otherwise."""
    if share is not None and share.torchrun:
        import torch.distributed as dist

        dist.barrier()


def last_barrier(share: Share | None) -> None:
    """Waits for every process of a ``torchrun`` launch, then leaves the group: rank 0 then scores as a single
    process (torchmetrics, for one, would otherwise gather its FID and KID states from ranks that have exited)."""
    if share is not None and share.torchrun:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


@contextmanager
def leader_first(share: Share | None) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. builds the miniature world into the cache), the others after it (finding it
    built); a single process just runs it."""
    if share is not None and share.rank != 0:
        barrier(share)
    yield
    if share is not None and share.rank == 0:
        barrier(share)


def spawn_shares(worker: Callable, args: tuple, devices: list[str]) -> None:
    """Runs ``worker(rank, devices, *args)`` in one spawned process per device and waits for all.

    Raises:
        RuntimeError: when a process fails (the others are stopped), naming its ``--devices`` entry and its error.
    """
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    try:
        torch.multiprocessing.spawn(worker, args=(devices, *args), nprocs=len(devices), join=True)
    except ProcessRaisedException as error:
        index = error.error_index
        message = _raised(error.msg)
        raise RuntimeError(f"--devices[{index}] ({devices[index]}): its drawing process failed: {message}") from error
    except ProcessExitedException as error:
        index = error.error_index
        raise RuntimeError(f"--devices[{index}] ({devices[index]}): its drawing process exited with code "
                           f"{error.exit_code} (killed? out of memory?)") from error  # fmt: skip


def _raised(traceback: str) -> str:
    """The exception at the end of a child's traceback text, without its frames (its message may span lines)."""
    lines = traceback.strip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1 :] if frames else lines
    start = next((i for i, line in enumerate(after) if line and not line[0].isspace()), 0)
    return "\n".join(after[start:]).strip() or "(no message)"


def image_stamps(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder`` (relative path → inode, size, mtime): taken before drawing, it tells which images
    an earlier run had written (each image and its settings are written anew, atomically, when drawn)."""
    stamps = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            stat = path.stat()
            stamps[str(path.relative_to(folder))] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return stamps


__all__ = [
    "Share",
    "barrier",
    "check_devices",
    "image_stamps",
    "last_barrier",
    "leader_first",
    "process_group",
    "spawn_shares",
    "torchrun_share",
]
