"""Stage 7, targets: each kept identity's name embedding, from the SDXL pipeline's own text encoders.

Uses ``namespace.name_embeddings`` (the one function the plugin's tests check against ``encode_prompt``), batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from namespace import name_embeddings

from .probe import load_sdxl


@dataclass
class TargetsConfig:
    """Attributes:
    num_tokens: N, positions kept after the start token (8 in the paper).
    batch_size: names per text-encoder pass.
    device: where the text encoders run.
    """

    num_tokens: int = 8
    batch_size: int = 256
    device: str = "cpu"


def compute_targets(
    identity_ids: list[int], names: list[str], pipeline: str, config: TargetsConfig, output: Path
) -> dict:
    """Writes ``targets.safetensors``: ``name_embeddings`` (M, N, D) float32 and ``identity_ids`` (M,)."""
    if not names:
        raise ValueError("targets: no identity is left after cleaning; nothing to embed")
    pipe = load_sdxl(pipeline, config.device, text_only=True)
    embeddings = name_embeddings(pipe, names, num_tokens=config.num_tokens, batch_size=config.batch_size)
    tensors = {"name_embeddings": embeddings.float().cpu().contiguous(), "identity_ids": torch.tensor(identity_ids)}
    save_file(tensors, str(Path(output) / "targets.safetensors"), metadata={"pipeline": pipeline})
    return {"identities": len(names), "shape": list(embeddings.shape), "pipeline": pipeline}
