"""The SDXL family's text side: CLIP-L (768) ‖ OpenCLIP-bigG (1280) prompt embeddings, 2048 wide; the refiner has
only bigG (1280). Every SDXL-specific fact of the text side lives here.

Only the pipelines' documented surface is used: the tokenizers, the text encoders' configs and ``encode_prompt``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from . import Encoded, NameSlice

ENCODERS = ("text_encoder", "text_encoder_2")  # CLIP-L, then bigG: their widths add up on the last axis
REQUIRED = ("tokenizer_2", "text_encoder_2")  # the refiner has these alone
REFINER_WIDTH = 1280  # bigG alone
NAME_START = 1  # a name's first position: right after the start token
AESTHETIC_SCORE = 6.0  # the refiner pipeline's default aesthetic_score, one of its UNet's micro-conditions


class SDXLTextSide:
    """SDXL base, img2img, inpainting, ControlNet and the refiner: two tokenizers and text encoders (the refiner
    only the second) and ``encode_prompt`` returning prompt embeddings and pooled embeddings."""

    family = "sdxl"

    def components(self) -> dict[str, type]:
        """The pipeline parts the text side reads, by their diffusers names (for Modular Diffusers' component
        specs): the two text encoders (their widths) and CLIP-L's tokenizer (token counts)."""
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

        return {ENCODERS[0]: CLIPTextModel, ENCODERS[1]: CLIPTextModelWithProjection, "tokenizer": CLIPTokenizer}

    def check(self, pipe: object, argument: str = "pipe") -> None:
        """Raises unless ``pipe`` encodes prompts the SDXL way (two tokenizers and text encoders, ``encode_prompt``)."""
        missing = [part for part in (*REQUIRED, "encode_prompt") if getattr(pipe, part, None) is None]
        if missing:
            raise TypeError(
                f"{argument}: expected an SDXL-family diffusers pipeline (two tokenizers and text encoders), got "
                f"{type(pipe).__name__} without {', '.join(missing)}; SD 1.5/2.x pipelines have no name space of "
                "this shape"
            )

    def check_folder(
        self, folder: Path, name_width: int | None, argument: str = "pipe", name_argument: str = "the encoder"
    ) -> None:
        """Reads ``model_index.json`` and the text encoders' ``config.json`` (their ``hidden_size``)."""
        index = json.loads((folder / "model_index.json").read_text())
        present = {part for part, value in index.items() if isinstance(value, list) and value[0] is not None}
        missing = [part for part in REQUIRED if part not in present]
        if missing:
            raise TypeError(
                f"{argument}: magicnaming needs an SDXL-family pipeline (two tokenizers and text encoders), got "
                f"{index.get('_class_name')} without {', '.join(missing)}"
            )
        if name_width is None:
            return
        widths = {}
        for part in ENCODERS:
            config = folder / part / "config.json"
            if part in present and config.is_file():
                widths[part] = json.loads(config.read_text()).get("hidden_size")
        if None in widths.values() or len(widths) != len(present & set(ENCODERS)):
            return  # an unusual layout: the plugin checks the width when it loads
        width = sum(widths.values())
        if _slice(width, name_width, only_second_encoder=ENCODERS[0] not in widths) is None:
            raise ValueError(
                f"{argument}: its prompt embeddings have width {width}, but {name_argument} predicts names of width "
                f"{name_width}: the encoder was trained for another model family"
            )

    def width(self, pipe: object) -> int:
        """D' of the pipeline's prompt embeddings: the summed widths of its text encoders (2048 SDXL, 1280 refiner)."""
        encoders = [getattr(pipe, name, None) for name in ENCODERS]
        return sum(encoder.config.hidden_size for encoder in encoders if encoder is not None)

    def name_slice(self, pipe: object, name_width: int) -> NameSlice:
        """All of CLIP-L ‖ bigG for SDXL base; the last 1280 channels (bigG) for the refiner."""
        width = self.width(pipe)
        found = _slice(width, name_width, only_second_encoder=getattr(pipe, ENCODERS[0], None) is None)
        if found is None:
            raise ValueError(
                f"the encoder predicts names of width {name_width}, but {type(pipe).__name__}'s prompt embeddings have "
                f"width {width}: the encoder was trained for another model family (SDXL names are 2048 wide: CLIP-L "
                f"768 ‖ bigG {REFINER_WIDTH})"
            )
        return found

    def width_hint(self, width: int) -> str:
        """The refiner's hint: its 1280-wide embeddings take the bigG part of a 2048-wide name."""
        if width != REFINER_WIDTH:
            return ""
        return f" (is this an SDXL refiner? it takes the bigG part of the name, name[..., -{REFINER_WIDTH}:])"

    def tokenizer(self, pipe: object):
        """CLIP-L's tokenizer, else ``tokenizer_2`` (the refiner's): both tokenize alike, only their padding differs."""
        return getattr(pipe, "tokenizer", None) or pipe.tokenizer_2

    def token_counts(self, pipe: object, texts: list[str]) -> list[int]:
        """Tokens per text, start and end tokens included, before truncation."""
        return [len(ids) for ids in self.tokenizer(pipe)(texts).input_ids]

    def encode(
        self,
        pipe: object,
        prompts: list[str],
        negative_prompt: str | list[str] | None = None,
        clip_skip: int | None = None,
        *,
        prompt_2: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
    ) -> Encoded:
        """``pipe.encode_prompt`` with classifier-free guidance: prompt and negative embeddings (B, 77, D') and the
        pooled embeddings (B, P) the SDXL UNet's added conditioning takes."""
        with torch.no_grad():
            embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
                prompt=prompts,
                prompt_2=prompt_2,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
                negative_prompt_2=negative_prompt_2,
                clip_skip=clip_skip,
            )
        return Encoded(
            {
                "prompt_embeds": embeds,
                "pooled_prompt_embeds": pooled,
                "negative_prompt_embeds": negative,
                "negative_pooled_prompt_embeds": negative_pooled,
            }
        )

    def unet_conditioning(self, pipe: object, encoded: Encoded, height: int, width: int) -> dict[str, object]:
        """The UNet's keywords beside the prompt embeddings, as the pipeline makes them for an uncropped ``height`` ×
        ``width`` image: ``added_cond_kwargs`` with the pooled embeddings (B, P) and the micro-conditions
        ``time_ids``, (B, 6) original size, crop (0, 0) and target size, or the refiner's (B, 5) original size, crop
        and aesthetic score (6.0, the pipeline's default)."""
        pooled = encoded.inputs["pooled_prompt_embeds"]  # (B, P)
        if getattr(pipe, "config", {}).get("requires_aesthetics_score", False):
            micro = (height, width, 0, 0, AESTHETIC_SCORE)
        else:
            micro = (height, width, 0, 0, height, width)
        time_ids = torch.tensor([micro], dtype=pooled.dtype, device=pooled.device).expand(pooled.shape[0], -1)
        return {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}

    def name_embeddings(self, pipe: object, names: list[str], num_tokens: int, batch_size: int) -> torch.Tensor:
        """Positions 1..N of ``pipe.encode_prompt``: both tokenizers (each with its own padding), both text
        encoders' penultimate hidden layer, CLIP-L ‖ bigG on the last axis. Returns (B, N, D')."""
        length = pipe.tokenizer_2.model_max_length
        if not 1 <= num_tokens <= length - NAME_START:
            raise ValueError(
                f"num_tokens: expected 1..{length - NAME_START} (positions after the start token), got {num_tokens}"
            )
        _warn_long_names(pipe.tokenizer_2, names, num_tokens)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(names), batch_size):
                prompt_embeds, *_ = pipe.encode_prompt(
                    prompt=names[start : start + batch_size], num_images_per_prompt=1, do_classifier_free_guidance=False
                )  # (b, 77, D')
                chunks.append(prompt_embeds[:, NAME_START : NAME_START + num_tokens])
        return torch.cat(chunks)  # (B, N, D')


def _slice(width: int, name_width: int, only_second_encoder: bool) -> NameSlice | None:
    """The channels of a ``name_width``-wide name that ``width``-wide prompt embeddings take, or None."""
    if width == name_width:
        return NameSlice(0, width)
    if only_second_encoder and width < name_width:  # the refiner: its embeddings are the bigG part alone
        return NameSlice(name_width - width, width)
    return None


def _warn_long_names(tokenizer: object, names: list[str], num_tokens: int) -> None:
    """Warns about names whose own tokens (start and end tokens aside) do not fit in N positions."""
    token_counts = [len(ids) - 2 for ids in tokenizer(names).input_ids]
    long = [f"{name!r} ({count})" for name, count in zip(names, token_counts, strict=True) if count > num_tokens]
    if long:
        warnings.warn(
            f"{len(long)} name(s) need more than {num_tokens} tokens and are cut: " + ", ".join(long[:5]),
            UserWarning,
            stacklevel=4,
        )


SDXL = SDXLTextSide()

__all__ = ["SDXL", "SDXLTextSide"]
