"""Stage 7, targets: each kept identity's name embedding, from the pipeline's own text encoders.

Uses ``namespace.name_embeddings``, batched: the pipeline's text side (``namespace.text_sides``) embeds the names as
it embeds prompts, so the targets and the names the plugin prepends agree. Beside the targets, in their metadata, goes
the text side's fingerprint (``namespace.fingerprint``): the assemble stage keeps it in the LaionCele directory, the
trained encoder's record copies it, and the plugin warns when a pipeline's text encoders drift from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from namespace import name_embeddings
from namespace.fingerprint import fingerprint
from namespace.laioncele import FINGERPRINT
from namespace.model_names import load_pipeline


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
    """Writes ``targets.safetensors``: ``name_embeddings`` (M, N, D) float32 and ``identity_ids`` (M,); its metadata:
    ``pipeline`` and ``fingerprint`` (JSON, the pipeline's text-side fingerprint at the targets' N)."""
    if not names:
        raise ValueError("targets: no identity is left after cleaning; nothing to embed")
    pipe = load_pipeline(pipeline, "text2img", "auto", config.device, text_only=True)
    embeddings = name_embeddings(pipe, names, num_tokens=config.num_tokens, batch_size=config.batch_size)
    text_side = fingerprint(pipe, num_tokens=config.num_tokens)  # 16 probe names: one more text-encoder pass
    tensors = {"name_embeddings": embeddings.float().cpu().contiguous(), "identity_ids": torch.tensor(identity_ids)}
    metadata = {"pipeline": pipeline, FINGERPRINT: json.dumps(text_side)}
    save_file(tensors, str(Path(output) / "targets.safetensors"), metadata=metadata)
    return {"identities": len(names), "shape": list(embeddings.shape), "pipeline": pipeline}
