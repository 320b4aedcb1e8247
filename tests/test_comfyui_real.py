"""The pack inside a real ComfyUI (skipped unless ``COMFYUI_PATH`` names a ComfyUI checkout).

In ComfyUI's own process (``COMFYUI_PYTHON``, default this Python; cwd ``COMFYUI_PATH``): random text encoders of the
full SDXL architecture (CLIP-L 768 and bigG 1280, seeded) are saved as safetensors with SDXL's ``text_model.`` key
prefix, loaded by DualCLIPLoader (type sdxl) in fp32 (``--fp32-text-enc``), a prompt is encoded by CLIPTextEncode and
the pack's Apply Identity (loaded by ComfyUI's own custom-node loader) adds a name; a diffusers
StableDiffusionXLPipeline built on the same weights (ComfyUI's CLIP tokenizer files for both tokenizers, the second
padding with "!" as SDXL's does) gives the plugin's ``prompt_embeds`` for the same identity. The run fails if ComfyUI
reports missing text-encoder weights, and reports max |Δ| (fp32) with and without the name.

    COMFYUI_PATH=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/ComfyUI/venv/bin/python pytest -s tests/test_comfyui_real.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("COMFYUI_PATH")
PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
TOLERANCE = 1e-4  # fp32: the same weights and operations, summed in another order

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not COMFYUI, reason="set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its Python)"),
]

SCRIPT = r"""
import asyncio, io, json, logging, sys
from pathlib import Path

root, pack, folder = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
sys.argv = ["main.py", "--cpu", "--fp32-text-enc"]
import comfy.options
comfy.options.enable_args_parsing()  # ComfyUI's own options, as main.py reads them
log = io.StringIO()
handler = logging.StreamHandler(log)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

# SDXL's two text encoders, as their config.json files give them
COMMON = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
CLIP_L = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        projection_dim=768, hidden_act="quick_gelu", **COMMON)
CLIP_G = CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                        projection_dim=1280, hidden_act="gelu", **COMMON)


def written(model, path):
    # SDXL's files carry the text_model. prefix; a transformers CLIPTextModel may save its keys without it
    state = {key if key.startswith(("text_model.", "text_projection")) else "text_model." + key: value.contiguous()
             for key, value in model.state_dict().items()}
    # SDXL leaves CLIP-L's projection unused (the pooled output is bigG's); ComfyUI's CLIP-L has one and reports it
    # missing from a file without it: an identity matrix, which neither path uses
    state.setdefault("text_projection.weight", torch.eye(model.config.hidden_size))
    save_file(state, str(path))
    return path


torch.manual_seed(0)
clip_l = CLIPTextModel(CLIP_L).eval()
clip_g = CLIPTextModelWithProjection(CLIP_G).eval()
written(clip_l, folder / "clip_l.safetensors")
written(clip_g, folder / "clip_g.safetensors")

import folder_paths
folder_paths.add_model_folder_path("text_encoders", str(folder))
import nodes
assert asyncio.run(nodes.load_custom_node(str(pack))), "ComfyUI did not load the pack"
apply_node = nodes.NODE_CLASS_MAPPINGS["MagicNamingApplyIdentity"]

# the diffusers text side on the same weights, and the plugin
from diffusers import StableDiffusionXLPipeline
from namespace import Identity, NameSpaceStatistics, NameEncoder, name_embeddings
from namespace.inference import MagicNaming
from namespace.synthetic.encoder import FICTIONAL_NAMES, tiny_name_encoder_config

tokenizers = root / "comfy" / "sd1_tokenizer"
pipe = StableDiffusionXLPipeline(
    vae=None, unet=None, scheduler=None, text_encoder=clip_l, text_encoder_2=clip_g,
    tokenizer=CLIPTokenizer.from_pretrained(tokenizers, model_max_length=77),  # the file says 8192
    tokenizer_2=CLIPTokenizer.from_pretrained(tokenizers, model_max_length=77, pad_token="!"),
)
encoder = NameEncoder(tiny_name_encoder_config(8, 2048), load_towers=False)
encoder.set_statistics(NameSpaceStatistics.fit(name_embeddings(pipe, list(FICTIONAL_NAMES)[:16]).float(), rank=8))
identity = Identity.sampled(encoder.statistics, 1, seed=0)[0]
prompt, delta = "a photo of a person riding a horse on the beach", 1.5

# ComfyUI: DualCLIPLoader (sdxl) -> CLIPTextEncode -> Apply Identity
clip = nodes.DualCLIPLoader().load_clip("clip_l.safetensors", "clip_g.safetensors", "sdxl")[0]
conditioning = nodes.CLIPTextEncode().encode(clip, prompt)[0]
negative = nodes.CLIPTextEncode().encode(clip, "")[0]
inputs = dict(name_encoder=encoder, identity=identity, positive=conditioning, negative=negative, delta=delta, eta=0.0,
              negative_name="none", start_percent=0.0, end_percent=1.0)
named = apply_node.execute(**inputs).result[0]

expected = MagicNaming(pipe, encoder).prompt_embeds(prompt, identity, delta=delta)
plain = pipe.encode_prompt(prompt, do_classifier_free_guidance=False)
comfy_named, comfy_plain = named[0][0].float(), conditioning[0][0].float()
print(json.dumps({
    "comfy_shape": list(comfy_named.shape),
    "comfy_dtype": str(conditioning[0][0].dtype),
    "diffusers_dtype": str(expected["prompt_embeds"].dtype),
    "max_abs_named": float((comfy_named - expected["prompt_embeds"]).abs().max()),
    "max_abs_plain": float((comfy_plain - plain[0]).abs().max()),
    "max_abs_pooled": float((conditioning[0][1]["pooled_output"].float() - plain[2]).abs().max()),
    "scale": float(expected["prompt_embeds"].abs().max()),
    "clip_missing": [line for line in log.getvalue().splitlines() if "clip missing" in line or "unexpected" in line],
    "text_encoder_log": [line for line in log.getvalue().splitlines() if "text encoder model load" in line],
}))
"""


def test_apply_identity_in_comfyui_equals_the_plugins_prompt_embeds(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([COMFYUI, str(ROOT)])}  # the package from this checkout
    result = subprocess.run(
        [PYTHON, "-c", SCRIPT, COMFYUI, str(ROOT / "comfyui"), str(tmp_path)],
        cwd=COMFYUI,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=1))
    assert figures["clip_missing"] == [], figures["clip_missing"]
    assert figures["comfy_shape"] == [1, 77, 2048]
    assert figures["comfy_dtype"] == figures["diffusers_dtype"] == "torch.float32"
    assert figures["max_abs_plain"] < TOLERANCE
    assert figures["max_abs_pooled"] < TOLERANCE
    assert figures["max_abs_named"] < TOLERANCE
