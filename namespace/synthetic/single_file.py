"""A diffusers SDXL pipeline written as one ``.safetensors`` file in the original (SGM) layout, as community
checkpoints ship: the inverse of the conversion in ``diffusers.loaders.single_file_utils``.

diffusers reads such files (``StableDiffusionXLPipeline.from_single_file``) but writes none, so the tests of
``--pipeline model.safetensors`` write one from the tiny pipeline here. The mapping follows the pipeline's configs (any
number of blocks and layers), so it writes the full-size architecture too:

- UNet → ``model.diffusion_model.*`` (``input_blocks`` / ``middle_block`` / ``output_blocks``);
- VAE → ``first_stage_model.*`` (``encoder.down.i.block.j``, ``decoder.up`` numbered from the bottom, 1×1 convolutions
  in the mid-block attention);
- CLIP-L → ``conditioner.embedders.0.transformer.text_model.*`` (transformers' own layout);
- OpenCLIP bigG → ``conditioner.embedders.1.model.*`` (OpenCLIP's layout: fused q/k/v ``in_proj``, ``text_projection``
  as the (width, projection) matrix text features are multiplied by).

from namespace.synthetic.single_file import save_single_file
save_single_file(tiny_sdxl_pipeline(), "tiny.safetensors")
StableDiffusionXLPipeline.from_single_file("tiny.safetensors", config=saved_pipeline_folder)  # the same weights
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."

# diffusers name → original name; the keys are whole dotted parts of a name
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's pooled-text and size/crop conditioning
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def _split(key: str) -> tuple[str, str]:
    """``a.b.weight`` → (``a.b``, ``weight``)."""
    module, _, parameter = key.rpartition(".")
    return module, parameter


def _resnet(rest: str) -> str:
    module, parameter = _split(rest)
    return f"{_UNET_RESNET[module]}.{parameter}"


def unet_to_original(state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict in the original layout (without ``model.diffusion_model.``).

    Down block b's layer j is ``input_blocks[1 + b·(L+1) + j]`` (its downsampler the block's last index), up block b's
    layer j is ``output_blocks[b·(L+1) + j]``, each holding ``0`` = ResNet, ``1`` = transformer; an up block's
    upsampler follows its last layer's parts (``.2.conv`` after a transformer, else ``.1.conv``).
    """
    if not isinstance(layers_per_block, int):
        raise ValueError(f"layers_per_block: the original layout has one count for every block, got {layers_per_block}")
    step = layers_per_block + 1
    up_with_attention = {int(key.split(".")[1]) for key in state if re.match(r"up_blocks\.\d+\.attentions\.", key)}
    original = {}
    for key, tensor in state.items():
        module, parameter = _split(key)
        if module in _UNET_TOP:
            original[f"{_UNET_TOP[module]}.{parameter}"] = tensor
        elif match := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            side, block, part, layer, rest = match.groups()
            stage, first = ("input_blocks", 1) if side == "down" else ("output_blocks", 0)
            index = first + int(block) * step + int(layer)
            original[f"{stage}.{index}." + (f"0.{_resnet(rest)}" if part == "resnets" else f"1.{rest}")] = tensor
        elif match := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            block, parameter = match.groups()
            original[f"input_blocks.{(int(block) + 1) * step}.0.op.{parameter}"] = tensor
        elif match := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            block, parameter = int(match[1]), match[2]
            part = 2 if block in up_with_attention else 1
            original[f"output_blocks.{block * step + layers_per_block}.{part}.conv.{parameter}"] = tensor
        elif match := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            original[f"middle_block.{2 * int(match[1])}.{_resnet(match[2])}"] = tensor
        elif match := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            original[f"middle_block.1.{match[1]}"] = tensor
        else:
            raise KeyError(f"UNet weight {key!r} has no place in the original SDXL layout")
    return original


def vae_to_original(state: dict[str, torch.Tensor], up_blocks: int) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict in the original layout (without ``first_stage_model.``): the decoder's
    up blocks are numbered from the bottom (diffusers' block i is ``up[up_blocks - 1 - i]``) and the mid-block
    attention's projections are 1×1 convolutions, (C, C) → (C, C, 1, 1)."""
    original = {}
    for key, tensor in state.items():
        module, parameter = _split(key)
        if match := re.fullmatch(r"(encoder|decoder)\.conv_norm_out", module):
            original[f"{match[1]}.norm_out.{parameter}"] = tensor
        elif match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)", module):
            name = match[3].replace("conv_shortcut", "nin_shortcut")
            original[f"encoder.down.{match[1]}.block.{match[2]}.{name}.{parameter}"] = tensor
        elif match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv", module):
            original[f"encoder.down.{match[1]}.downsample.conv.{parameter}"] = tensor
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)", module):
            name = match[3].replace("conv_shortcut", "nin_shortcut")
            original[f"decoder.up.{up_blocks - 1 - int(match[1])}.block.{match[2]}.{name}.{parameter}"] = tensor
        elif match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv", module):
            original[f"decoder.up.{up_blocks - 1 - int(match[1])}.upsample.conv.{parameter}"] = tensor
        elif match := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(\w+)", module):
            name = match[3].replace("conv_shortcut", "nin_shortcut")
            original[f"{match[1]}.mid.block_{int(match[2]) + 1}.{name}.{parameter}"] = tensor
        elif match := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", module):
            side, name = match.groups()
            if name not in _VAE_ATTENTION:
                raise KeyError(f"VAE weight {key!r} has no place in the original SDXL layout")
            is_projection = name != "group_norm" and parameter == "weight"
            original[f"{side}.mid.attn_1.{_VAE_ATTENTION[name]}.{parameter}"] = (
                tensor[:, :, None, None] if is_projection else tensor
            )
        elif re.fullmatch(r"(encoder|decoder)\.conv_(in|out)|(post_)?quant_conv", module):
            original[key] = tensor
        else:
            raise KeyError(f"VAE weight {key!r} has no place in the original SDXL layout")
    return original


def clip_l_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel`` state dict as SDXL's files hold it: transformers' names under ``text_model.``
    (recent transformers save the model without that prefix)."""
    return {key if key.startswith("text_model.") else f"text_model.{key}": tensor for key, tensor in state.items()}


def open_clip_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModelWithProjection`` state dict in OpenCLIP's layout: q, k and v fused into
    ``attn.in_proj_weight`` (3·W, W) and ``in_proj_bias``; ``text_projection`` is the Linear's weight transposed,
    (W, P)."""
    state = {key.removeprefix("text_model."): tensor for key, tensor in state.items()}
    original = {}
    for key, tensor in state.items():
        module, parameter = _split(key)
        if key == "embeddings.token_embedding.weight":
            original["token_embedding.weight"] = tensor
        elif key == "embeddings.position_embedding.weight":
            original["positional_embedding"] = tensor  # (77, W)
        elif module == "final_layer_norm":
            original[f"ln_final.{parameter}"] = tensor
        elif key == "text_projection.weight":
            original["text_projection"] = tensor.T  # (W, P): OpenCLIP computes x @ text_projection
        elif match := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj", module):
            if match[2] == "q":  # k and v are fused in with q
                prefix = f"encoder.layers.{match[1]}.self_attn"
                parts = [state[f"{prefix}.{name}_proj.{parameter}"] for name in "qkv"]
                original[f"transformer.resblocks.{match[1]}.attn.in_proj_{parameter}"] = torch.cat(parts)
        elif (match := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", module)) and match[2] in _OPEN_CLIP_LAYER:
            original[f"transformer.resblocks.{match[1]}.{_OPEN_CLIP_LAYER[match[2]]}.{parameter}"] = tensor
        else:
            raise KeyError(f"text encoder 2 weight {key!r} has no place in OpenCLIP's layout")
    return original


def original_sdxl_state_dict(pipe) -> dict[str, torch.Tensor]:
    """The UNet, VAE and both text encoders of an SDXL pipeline as one state dict in the original layout (tensors on
    the models' device)."""
    parts = [
        (UNET_PREFIX, unet_to_original(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)),
        (VAE_PREFIX, vae_to_original(pipe.vae.state_dict(), len(pipe.vae.config.up_block_types))),
        (CLIP_L_PREFIX, clip_l_to_original(pipe.text_encoder.state_dict())),
        (OPEN_CLIP_PREFIX, open_clip_to_original(pipe.text_encoder_2.state_dict())),
    ]
    return {prefix + key: tensor.detach().contiguous() for prefix, part in parts for key, tensor in part.items()}


def save_single_file(pipe, path: str | Path) -> Path:
    """Writes ``pipe``'s four models as one ``.safetensors`` file in the original SDXL layout (atomically); returns
    ``path``. The tokenizers and the scheduler are not in it: ``from_single_file`` takes them from ``config``."""
    from safetensors.torch import save_file

    from ..files import atomic_write

    state = {key: tensor.cpu() for key, tensor in original_sdxl_state_dict(pipe).items()}
    return atomic_write(path, lambda temporary: save_file(state, str(temporary), metadata={"format": "pt"}))


__all__ = [
    "clip_l_to_original",
    "open_clip_to_original",
    "original_sdxl_state_dict",
    "save_single_file",
    "unet_to_original",
    "vae_to_original",
]
