"""IP-Adapter weights with random values, in the layout diffusers' ``load_ip_adapter`` reads: for timing the
plugin against its peer and for offline tests of the evaluation's plumbing, never for reported numbers.

from namespace.testing.ip_adapter import save_random_ip_adapter
root = save_random_ip_adapter(folder, pipe.unet)   # root/sdxl_models/{ip-adapter_random.safetensors, image_encoder/}
pipe.load_ip_adapter(str(root), subfolder="sdxl_models", weight_name="ip-adapter_random.safetensors")
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..seeding import seeded

RANDOM_WEIGHT_NAME = "ip-adapter_random.safetensors"


def random_ip_adapter(unet, image_embed_dim: int, generator: torch.Generator) -> dict:
    """A state dict in IP-Adapter's layout (basic image projection to 4 tokens) with random weights."""
    cross = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": 0.02 * torch.randn(4 * cross, image_embed_dim, generator=generator),
        "proj.bias": torch.zeros(4 * cross),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    adapter, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention: IP-Adapter adds keys/values to cross-attention only
        block = name.split(".")[0]
        channels = unet.config.block_out_channels
        if block == "mid_block":
            hidden = channels[-1]
        elif block == "up_blocks":
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        for kind in ("to_k_ip", "to_v_ip"):
            adapter[f"{key_id}.{kind}.weight"] = 0.02 * torch.randn(hidden, cross, generator=generator)
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": adapter}


def save_random_ip_adapter(folder: str | Path, unet, subfolder: str = "sdxl_models", seed: int = 0) -> Path:
    """Writes random IP-Adapter weights for ``unet`` and a tiny random CLIP image encoder (32-pixel inputs, 32-wide
    embeddings) into ``folder/subfolder`` as ``load_ip_adapter`` finds them; returns ``folder``."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = Path(folder) / subfolder
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=32)  # fmt: skip
    with seeded(seed):
        CLIPVisionModelWithProjection(config).save_pretrained(root / "image_encoder")
    state = random_ip_adapter(unet, config.projection_dim, torch.Generator().manual_seed(seed))
    flat = {f"{part}.{key}": tensor.contiguous() for part, tensors in state.items() for key, tensor in tensors.items()}
    save_file(flat, str(root / RANDOM_WEIGHT_NAME))
    return Path(folder)


__all__ = ["RANDOM_WEIGHT_NAME", "random_ip_adapter", "save_random_ip_adapter"]
