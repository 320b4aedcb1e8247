"""The seam for base-model families: SDXL's text side lives in namespace/text_sides/ alone, and behaves as the
pipeline does (widths, the name's channels and positions, encoding, tokenizer, folder check, refusals)."""

import json
import re
from pathlib import Path

import pytest
import torch

import namespace as ns
from namespace.testing import TINY_WIDTH, tiny_sd15_pipeline, tiny_sdxl_refiner_pipeline
from namespace.text_sides import Encoded, NameSlice, text_side, text_side_for_folder, width_hint
from namespace.text_sides.sdxl import SDXL

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("namespace", "data_pipeline", "train", "inference")
# the text side's module, and the packages that build SDXL-shaped test models
ALLOWED = ("namespace/text_sides", "namespace/synthetic", "namespace/miniature", "namespace/testing")
SDXL_PARTS = re.compile(r"encode_prompt|tokenizer_2|text_encoder_2|pooled_prompt_embeds")
TINY_L, TINY_BIGG = 32, 48  # the tiny pipeline's CLIP-L and bigG widths


def sdxl_parts_outside_the_seam(root: Path) -> list[str]:
    """``file:line: text`` for every line of a production module outside ALLOWED that names an SDXL part."""
    found = []
    for top in PRODUCTION:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(ALLOWED):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if SDXL_PARTS.search(line):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


class TestTheSeamHolds:
    def test_no_production_module_outside_text_sides_names_sdxl_parts(self):
        assert sdxl_parts_outside_the_seam(ROOT) == []

    def test_the_scan_finds_a_planted_part(self, tmp_path):
        for top in PRODUCTION:
            (tmp_path / top).mkdir()
        (tmp_path / "inference" / "leak.py").write_text('"""ok"""\n\nembeds = pipe.encode_prompt("a")\n')
        (tmp_path / "namespace" / "text_sides").mkdir()
        (tmp_path / "namespace" / "text_sides" / "sdxl.py").write_text("pipe.tokenizer_2\n")  # allowed there
        assert sdxl_parts_outside_the_seam(tmp_path) == ['inference/leak.py:3: embeds = pipe.encode_prompt("a")']


class TestSDXL:
    def test_the_tiny_pipeline_is_sdxl_with_its_encoders_widths(self, tiny_pipe):
        side = text_side(tiny_pipe)
        assert side is SDXL and side.family == "sdxl"
        widths = tiny_pipe.text_encoder.config.hidden_size, tiny_pipe.text_encoder_2.config.hidden_size
        assert widths == (TINY_L, TINY_BIGG) and side.width(tiny_pipe) == TINY_WIDTH

    def test_name_slice_takes_all_channels_of_the_base_and_bigg_of_the_refiner(self, tiny_pipe):
        assert SDXL.name_slice(tiny_pipe, TINY_WIDTH) == NameSlice(0, TINY_WIDTH)
        refiner = tiny_sdxl_refiner_pipeline()
        assert text_side(refiner).width(refiner) == TINY_BIGG
        assert SDXL.name_slice(refiner, TINY_WIDTH) == NameSlice(TINY_L, TINY_BIGG)
        name = torch.arange(2 * TINY_WIDTH).reshape(2, TINY_WIDTH)
        assert torch.equal(SDXL.name_slice(refiner, TINY_WIDTH)(name), name[:, TINY_L:])
        assert SDXL.tokenizer(refiner) is refiner.tokenizer_2

    def test_name_of_another_width_is_refused(self, tiny_pipe):
        with pytest.raises(ValueError, match="predicts names of width 64, but StableDiffusionXLPipeline's prompt"):
            SDXL.name_slice(tiny_pipe, 64)

    def test_name_positions_are_those_after_the_start_token(self, tiny_pipe):
        names = ["Alma Quintrell", "Boris Vantanen"]
        embeds = SDXL.name_embeddings(tiny_pipe, names, num_tokens=5, batch_size=1)
        with torch.no_grad():
            prompt_embeds, *_ = tiny_pipe.encode_prompt(names, do_classifier_free_guidance=False)
        torch.testing.assert_close(embeds, prompt_embeds[:, 1:6], rtol=0, atol=0)
        torch.testing.assert_close(ns.name_embeddings(tiny_pipe, names, num_tokens=5), embeds, rtol=0, atol=0)

    def test_encode_is_encode_prompt_under_the_diffusers_keywords(self, tiny_pipe):
        prompts = ["a person riding a horse", "a person reading"]
        encoded = SDXL.encode(tiny_pipe, prompts, "blurry", prompt_2=["a painting", "a drawing"])
        expected = tiny_pipe.encode_prompt(prompts, prompt_2=["a painting", "a drawing"], negative_prompt="blurry")
        keys = ["prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds", "negative_pooled_prompt_embeds"]
        assert list(encoded.inputs) == keys
        for key, value in zip(["prompt_embeds", "negative_prompt_embeds"], expected[:2], strict=True):
            torch.testing.assert_close(encoded.inputs[key], value, rtol=0, atol=0, msg=key)
        torch.testing.assert_close(encoded.inputs["pooled_prompt_embeds"], expected[2], rtol=0, atol=0)
        torch.testing.assert_close(encoded.inputs["negative_pooled_prompt_embeds"], expected[3], rtol=0, atol=0)
        assert encoded.prompt_embeds is encoded.inputs["prompt_embeds"]

    def test_replaced_keeps_the_order_and_the_other_conditioning(self):
        inputs = {"prompt_embeds": torch.zeros(1), "extra": torch.ones(1), "negative_prompt_embeds": torch.zeros(1)}
        replaced = Encoded(inputs).replaced(torch.full((1,), 2.0), torch.full((1,), 3.0))
        assert list(replaced) == list(inputs) and replaced["extra"] is inputs["extra"]
        assert (replaced["prompt_embeds"].item(), replaced["negative_prompt_embeds"].item()) == (2.0, 3.0)

    def test_token_counts_include_start_and_end_tokens(self, tiny_pipe):
        assert SDXL.tokenizer(tiny_pipe) is tiny_pipe.tokenizer
        expected = [len(ids) for ids in tiny_pipe.tokenizer(["a cat", "a cat on a mat"]).input_ids]
        assert SDXL.token_counts(tiny_pipe, ["a cat", "a cat on a mat"]) == expected == [4, 7]

    def test_width_hint_names_the_refiner_for_1280_wide_embeddings_only(self):
        assert "is this an SDXL refiner?" in width_hint(1280) and "name[..., -1280:]" in width_hint(1280)
        assert width_hint(2048) == width_hint(TINY_WIDTH) == ""


class TestRefusals:
    def test_an_object_without_the_parts_is_refused_by_its_class(self):
        class Bare:
            tokenizer_2 = object()

        with pytest.raises(TypeError, match=r"^naming\.pipe: expected an SDXL-family .* got Bare without "
                                            r"text_encoder_2, encode_prompt;"):  # fmt: skip
            text_side(Bare(), "naming.pipe")

    def test_an_sd15_pipeline_is_refused(self):
        with pytest.raises(TypeError, match="got StableDiffusionPipeline without tokenizer_2, text_encoder_2"):
            text_side(tiny_sd15_pipeline())


def pipeline_folder(root: Path, encoders: dict[str, int], class_name: str = "StableDiffusionXLPipeline") -> Path:
    """A pipeline folder as far as the folder check reads it: model_index.json and the text encoders' configs."""
    index = {"_class_name": class_name, "unet": ["diffusers", "UNet2DConditionModel"], "tokenizer": [None, None]}
    for part, width in encoders.items():
        index[part] = ["transformers", "CLIPTextModel"]
        index[part.replace("text_encoder", "tokenizer")] = ["transformers", "CLIPTokenizer"]
        (root / part).mkdir(parents=True)
        (root / part / "config.json").write_text(json.dumps({"hidden_size": width}))
    (root / "model_index.json").write_text(json.dumps(index))
    return root


class TestFolders:
    def test_sdxl_and_refiner_folders_take_their_names(self, tmp_path):
        base = pipeline_folder(tmp_path / "base", {"text_encoder": 768, "text_encoder_2": 1280})
        refiner = pipeline_folder(tmp_path / "refiner", {"text_encoder_2": 1280})
        assert text_side_for_folder(base, 2048) is SDXL and text_side_for_folder(refiner, 2048) is SDXL
        assert text_side_for_folder(base) is SDXL  # no width: the parts alone

    def test_a_folder_of_another_width_is_refused(self, tmp_path):
        base = pipeline_folder(tmp_path / "base", {"text_encoder": 768, "text_encoder_2": 1280})
        with pytest.raises(ValueError, match=r"^--pipeline: its prompt embeddings have width 2048, but --encoder"):
            text_side_for_folder(base, 80, "--pipeline", "--encoder")

    def test_a_folder_without_the_parts_is_refused(self, tmp_path):
        sd15 = pipeline_folder(tmp_path / "sd15", {"text_encoder": 768}, "StableDiffusionPipeline")
        with pytest.raises(ValueError, match=r"got StableDiffusionPipeline without tokenizer_2, text_encoder_2$"):
            text_side_for_folder(sd15, 2048)
