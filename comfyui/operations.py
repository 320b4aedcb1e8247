"""What each node of the pack does, on the package's objects and plain tensors (no ComfyUI import).

``nodes.py`` resolves file names through ComfyUI's ``folder_paths`` and calls these functions; the repository's tests
call them directly. Every name-space computation is the package's own (``namespace``, ``namespace.inference``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch

import namespace as ns
from namespace import Identity, NameEncoder
from namespace.inference.conditioning import apply_identity as named_conditioning
from namespace.inference.conditioning import apply_mean_name

ENCODER_FILES = ("config.json", "model.safetensors")  # what makes a folder an encoder folder
IDENTITY_SUFFIX = ".safetensors"


def encoder_names(folders: Iterable[str | Path]) -> list[str]:
    """Encoder folders (holding config.json and model.safetensors) under ``folders``, as paths relative to them."""
    found = set()
    for folder in map(Path, folders):
        for config in folder.rglob(ENCODER_FILES[0]) if folder.is_dir() else ():
            if (config.parent / ENCODER_FILES[1]).is_file():
                found.add(config.parent.relative_to(folder).as_posix())
    return sorted(found)


def identity_names(folders: Iterable[str | Path]) -> list[str]:
    """Identity files under ``folders`` (``*.safetensors`` outside encoder folders), relative to them."""
    found = set()
    for folder in map(Path, folders):
        for path in folder.rglob(f"*{IDENTITY_SUFFIX}") if folder.is_dir() else ():
            if not (path.parent / ENCODER_FILES[0]).is_file():
                found.add(path.relative_to(folder).as_posix())
    return sorted(found)


def load_encoder(encoder_path: Path, device: torch.device | str = "cpu") -> tuple[NameEncoder]:
    """Load Name Encoder: the encoder folder, on ``device``, in eval mode."""
    return (NameEncoder.from_pretrained(encoder_path).to(device).eval(),)


def identity_from_images(
    name_encoder: NameEncoder, images: torch.Tensor, label: str = "identity", crop: str = "encoder"
) -> tuple[Identity]:
    """Identity from Images: ComfyUI's IMAGE batch (B, H, W, 3), floats in [0, 1], → one identity (names averaged)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Identity from Images.images: expected an IMAGE batch (B, H, W, 3), got {shape}")
    references = images.permute(0, 3, 1, 2).float().clamp(0, 1).cpu()  # (B, 3, H, W), as NameEncoder.encode takes
    reference_crop = None if crop == "encoder" else crop
    return (Identity.from_images(name_encoder, references, label=label, reference_crop=reference_crop),)


def load_identity(identity_path: Path) -> tuple[Identity]:
    """Load Identity: an identity file."""
    return (Identity.load(identity_path),)


def save_identity(identity: Identity, filename_prefix: str, output_folder: Path) -> Path:
    """Save Identity: ``<output>/<prefix>_<00001>.safetensors``, the next free number; refuses to leave the output
    folder and never overwrites a file.

    Returns:
        The path written.
    """
    output_folder = Path(output_folder).resolve()
    prefix = Path(output_folder, filename_prefix).resolve()
    if output_folder != prefix and output_folder not in prefix.parents:
        raise ValueError(f"Save Identity.filename_prefix: {filename_prefix!r} leads outside the output folder")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"{re.escape(prefix.name)}_(\d+){re.escape(IDENTITY_SUFFIX)}")
    taken = [int(match[1]) for path in prefix.parent.iterdir() if (match := pattern.fullmatch(path.name))]
    path = prefix.parent / f"{prefix.name}_{max(taken, default=0) + 1:05d}{IDENTITY_SUFFIX}"
    if path.exists():  # a file written between the listing and now
        raise FileExistsError(f"Save Identity: {path} exists; it is not overwritten")
    return identity.save(path)


def mix_identities(
    identity_1: Identity,
    identity_2: Identity,
    weight_1: float = 1.0,
    weight_2: float = 1.0,
    identity_3: Identity | None = None,
    weight_3: float = 1.0,
    identity_4: Identity | None = None,
    weight_4: float = 1.0,
) -> tuple[Identity]:
    """Mix Identities: ``namespace.mix`` of the connected identities with their weights."""
    pairs = [(identity_1, weight_1), (identity_2, weight_2), (identity_3, weight_3), (identity_4, weight_4)]
    pairs = [(identity, weight) for identity, weight in pairs if identity is not None]
    embedding = ns.mix([identity.embedding for identity, _ in pairs], [weight for _, weight in pairs])
    metadata = {"parts": ",".join(i.label for i, _ in pairs), "weights": str([w for _, w in pairs])}
    return (Identity(embedding, "mix", "mix", metadata=metadata),)


def interpolate_identities(a: Identity, b: Identity, t: float = 0.5, method: str = "lerp") -> tuple[Identity]:
    """Interpolate Identities: ``namespace.interpolate`` between a (t = 0) and b (t = 1)."""
    embedding = ns.interpolate(a.embedding, b.embedding, t, method=method)
    metadata = {"a": a.label, "b": b.label, "t": f"{t:g}", "method": method}
    return (Identity(embedding, f"{a.label}-{b.label}-{t:g}", "interpolation", metadata=metadata),)


def sample_identity(name_encoder: NameEncoder, seed: int = 0, temperature: float = 1.0) -> tuple[Identity]:
    """Sample Identity: one identity drawn from the encoder's statistics (``Identity.sampled``)."""
    return (Identity.sampled(name_encoder.statistics, 1, seed=seed, temperature=temperature)[0],)


def apply_identity(
    name_encoder: NameEncoder,
    identity: Identity,
    positive: list,
    negative: list,
    delta: float = 0.0,
    eta: float = 0.0,
    negative_name: str = "none",
    start_percent: float = 0.0,
    end_percent: float = 1.0,
) -> tuple[list, list]:
    """Apply Identity: the name in the positive conditioning (within the range), optionally the mean name in the
    negative; δ = 0 and η = 0 stand for the encoder's own (calibrated δ, mean name norm)."""
    statistics = name_encoder.statistics
    delta_value, eta_value = (None if delta == 0 else delta), (None if eta == 0 else eta)
    positive = named_conditioning(positive, identity, statistics, delta_value, eta_value, start_percent, end_percent)
    if negative_name == "mean":
        negative = apply_mean_name(negative, statistics, eta_value)
    elif negative_name != "none":
        raise ValueError(f"Apply Identity.negative_name: expected 'none' or 'mean', got {negative_name!r}")
    return positive, negative
